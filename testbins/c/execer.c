/*
 * execer.c - a process that works for a while, then execs another program.
 *
 * Used by the integration tests for: probes planted in a process that then
 * calls execv() (the old image, its breakpoints and its debug info are gone;
 * the same pid now runs another executable), and the tracer following or
 * releasing the process across the exec.
 *
 * It calls before_exec(i) for i = 0..N-1 (--iterations N), sleeping
 * --interval-us between calls; before_exec records
 * "call i=<i> pid=<getpid()>" on its probe line. Then it records "exec" and
 * execv()s PROGRAM (--exec) with the arguments
 *   --iterations 3 --interval-us 1000 [--record FILE]
 * (--record only when execer itself has one, with the same FILE), so the
 * default PROGRAM, loop-O0, appends its own "call seq=<n> ..." lines to the
 * same record file, under the same pid, and prints its own
 * "ready pid=<pid>". If the exec fails it exits 2.
 *
 * Options:
 *   --iterations N    before_exec() calls before the exec (default 5)
 *   --interval-us U   sleep between calls (default 2000)
 *   --exec PROGRAM    the program to exec (default: loop-O0 in the
 *                     directory of this executable)
 *   --record FILE     append the records above
 *   --wait-stdin      after "ready pid=<pid>", block until one byte (or EOF)
 */
#include "testbin.h"

/* before_exec() calls in this image; bumped on the probe line. */
volatile int before_exec_hits;

__attribute__((noinline, noclone))
int before_exec(int i)
{
	int v = i * 11 + 4;

	before_exec_hits++; append_line(record_fd, "call i=%d pid=%d", i, (int)getpid()); // @probe before_exec_body
	return v;
}

static void usage(void)
{
	usage_exit("execer [--iterations N] [--interval-us U] [--exec PROGRAM] "
		   "[--record FILE] [--wait-stdin]");
}

int main(int argc, char **argv)
{
	long iterations = 5, interval_us = 2000;
	char program[PATH_MAX + 32] = "";
	const char *record_path = NULL;
	char *args[8];
	int n = 0;
	volatile int sink = 0;

	for (int i = 1; i < argc; i++) {
		const char *v;

		if ((v = opt_value(argc, argv, &i, "--exec"))) {
			snprintf(program, sizeof program, "%s", v);
		} else if ((v = opt_value(argc, argv, &i, "--record"))) {
			record_fd = open_append(v);
			record_path = v;
		} else if (!opt_long(argc, argv, &i, "--iterations", &iterations) &&
			   !opt_long(argc, argv, &i, "--interval-us", &interval_us) &&
			   !opt_flag(argv, i, "--wait-stdin", &wait_for_stdin)) {
			usage();
		}
	}
	if (!program[0])
		path_beside_exe(program, sizeof program, "loop-O0");

	ready();

	for (long i = 0; i < iterations; i++) {
		sink += before_exec((int)i);
		sleep_us(interval_us);
	}

	args[n++] = program;
	args[n++] = "--iterations";
	args[n++] = "3";
	args[n++] = "--interval-us";
	args[n++] = "1000";
	if (record_path) {
		args[n++] = "--record";
		args[n++] = (char *)record_path;
	}
	args[n] = NULL;
	append_line(record_fd, "exec");
	execv(program, args);
	perror(program);
	return 2;
}
