/*
 * forker.c - a process that forks, vforks and posix_spawns while it works.
 *
 * Used by the integration tests for: probes surviving fork (a forked child
 * inherits the parent's memory, breakpoints included, and must not die of a
 * stray SIGTRAP), vfork and posix_spawn (CLONE_VFORK: the child shares the
 * parent's memory until exec), and the tracer not leaking into or hanging on
 * children.
 *
 * The parent calls step(0, i) for i = 0..N-1 (--iterations N). After every
 * N/C-th iteration (--children C) it fork()s a child that calls step(1, j) for
 * j = 0..4 and then _exit(0)s; the parent waits for it. Once per run, after
 * iteration N/2, it also posix_spawn()s /bin/true and vfork()+execl()s
 * /bin/true, waiting for each. Every wait records
 * "child pid=<p> status=<raw wait status> kind=<fork|spawn|vfork>".
 *
 * Options:
 *   --iterations N    parent iterations (default 100, must be > 0)
 *   --children C      forked children per run (default 4)
 *   --interval-us U   sleep between parent iterations (default 1000)
 *   --record FILE     append "call who=<who> i=<i> pid=<getpid()>" per step()
 *                     (who = 0 in the parent, 1 in forked children), and the
 *                     "child ..." lines above
 *   --wait-stdin      after "ready pid=<pid>", block until one byte (or EOF)
 */
#include "testbin.h"
#include <spawn.h>
#include <sys/wait.h>

extern char **environ;

/* Bumped on the probe line (in the parent and in forked children). */
volatile int step_hits;

__attribute__((noinline, noclone))
int step(int who, int i)
{
	int v = who * 100 + i;

	step_hits++; append_line(record_fd, "call who=%d i=%d pid=%d", who, i, (int)getpid()); // @probe step_body
	return v * 2 + 1;
}

static void wait_child(pid_t pid, const char *kind)
{
	int status = -1;

	while (waitpid(pid, &status, 0) < 0)
		;
	append_line(record_fd, "child pid=%d status=%d kind=%s", (int)pid, status, kind);
}

static void fork_child(void)
{
	pid_t pid = fork();

	if (pid < 0) {
		perror("fork");
		exit(2);
	}
	if (pid == 0) {
		volatile int sink = 0;
		for (int j = 0; j < 5; j++)
			sink += step(1, j);
		_exit(0);
	}
	wait_child(pid, "fork");
}

static void spawn_true(void)
{
	char *args[] = { "true", NULL };
	pid_t pid;
	int err = posix_spawn(&pid, "/bin/true", NULL, NULL, args, environ);

	if (err) {
		fprintf(stderr, "posix_spawn: %s\n", strerror(err));
		exit(2);
	}
	wait_child(pid, "spawn");
}

__attribute__((noinline))
static void vfork_true(void)
{
	pid_t pid = vfork();

	if (pid < 0) {
		perror("vfork");
		exit(2);
	}
	if (pid == 0) {
		execl("/bin/true", "true", (char *)NULL);
		_exit(127);
	}
	wait_child(pid, "vfork");
}

static void usage(void)
{
	usage_exit("forker [--iterations N] [--children C] [--interval-us U] "
		   "[--record FILE] [--wait-stdin]");
}

int main(int argc, char **argv)
{
	long iterations = 100, children = 4, interval_us = 1000, every, forked = 0;
	volatile int sink = 0;

	for (int i = 1; i < argc; i++) {
		if (!opt_long(argc, argv, &i, "--iterations", &iterations) &&
		    !opt_long(argc, argv, &i, "--children", &children) &&
		    !opt_long(argc, argv, &i, "--interval-us", &interval_us) &&
		    !common_option(argc, argv, &i))
			usage();
	}
	if (iterations <= 0 || children < 0)
		usage();
	every = children > 0 ? iterations / children : 0;
	if (children > 0 && every == 0)
		every = 1;

	ready();

	for (long i = 0; i < iterations; i++) {
		sink += step(0, (int)i);
		if (every > 0 && forked < children && (i + 1) % every == 0) {
			fork_child();
			forked++;
		}
		if (i == iterations / 2) {
			spawn_true();
			vfork_true();
		}
		sleep_us(interval_us);
	}
	return 0;
}
