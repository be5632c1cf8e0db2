/*
 * signals.c - a process with signal handlers, ticking once per millisecond.
 *
 * Used by the integration tests for: signals that arrive while the target is
 * traced must be delivered exactly once to the target's own handlers (none
 * swallowed by the tracer, none duplicated), including while probes are hit
 * and during attach/detach; and for an interval timer firing at the same time.
 *
 * Handlers (sigaction, SA_RESTART): SIGUSR1 and SIGALRM each bump a counter;
 * SIGTERM sets a flag. The main loop calls tick(i) then nanosleep()s 1 ms
 * (an interrupted nanosleep is simply not resumed). When the SIGTERM flag is
 * seen (or after --iterations ticks) it records
 * "counts usr1=<n> alrm=<m> ticks=<t>" and exits 0.
 *
 * Options:
 *   --itimer-ms M    arm a periodic ITIMER_REAL (SIGALRM) every M ms
 *   --iterations N   stop after N ticks, 0 = only on SIGTERM (default 0)
 *   --record FILE    append the "counts ..." line at the end
 *   --record-ticks   also append "tick i=<i>" per tick() call
 *   --wait-stdin     after "ready pid=<pid>", block until one byte (or EOF)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t usr1_count;
static volatile sig_atomic_t alrm_count;
static volatile sig_atomic_t term_flag;

static int record_fd = -1;
static int record_ticks;

/* Number of tick() calls; bumped on the probe line. */
volatile int tick_count;

/* Append one whole line to fd with a single write(). */
__attribute__((noinline, format(printf, 2, 3)))
static void append_line(int fd, const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int n;

	if (fd < 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof buf - 2)
		n = (int)sizeof buf - 2;
	buf[n++] = '\n';
	if (write(fd, buf, (size_t)n) != n)
		_exit(3);
}

static int open_append(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0) {
		perror(path);
		exit(2);
	}
	return fd;
}

static void wait_stdin(void)
{
	char c;
	while (read(0, &c, 1) < 0)
		;
}

static void on_usr1(int sig)
{
	(void)sig;
	usr1_count++;
}

static void on_alrm(int sig)
{
	(void)sig;
	alrm_count++;
}

static void on_term(int sig)
{
	(void)sig;
	term_flag = 1;
}

static void handle(int sig, void (*fn)(int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = fn;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(sig, &sa, NULL) != 0) {
		perror("sigaction");
		exit(2);
	}
}

/* Records "tick i=<i>" when --record-ticks (the check lives here, so the probe
 * line itself has no branch). */
__attribute__((noinline))
static void record_tick(int i)
{
	if (record_ticks)
		append_line(record_fd, "tick i=%d", i);
}

__attribute__((noinline, noclone))
int tick(int i)
{
	int v = i * 5 + 2;

	tick_count++; record_tick(i); // @probe tick_body
	return v;
}

static void usage(void)
{
	fprintf(stderr, "usage: signals [--itimer-ms M] [--iterations N] [--record FILE] "
			"[--record-ticks] [--wait-stdin]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	long itimer_ms = 0, iterations = 0;
	int wait = 0;
	volatile int sink = 0;
	const struct timespec one_ms = { 0, 1000000 };

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--itimer-ms") && i + 1 < argc)
			itimer_ms = strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--iterations") && i + 1 < argc)
			iterations = strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--record") && i + 1 < argc)
			record_fd = open_append(argv[++i]);
		else if (!strcmp(argv[i], "--record-ticks"))
			record_ticks = 1;
		else if (!strcmp(argv[i], "--wait-stdin"))
			wait = 1;
		else
			usage();
	}

	handle(SIGUSR1, on_usr1);
	handle(SIGALRM, on_alrm);
	handle(SIGTERM, on_term);
	if (itimer_ms > 0) {
		struct itimerval it;
		it.it_interval.tv_sec = itimer_ms / 1000;
		it.it_interval.tv_usec = (itimer_ms % 1000) * 1000;
		it.it_value = it.it_interval;
		if (setitimer(ITIMER_REAL, &it, NULL) != 0) {
			perror("setitimer");
			exit(2);
		}
	}

	printf("ready pid=%d\n", (int)getpid());
	fflush(stdout);
	if (wait)
		wait_stdin();

	for (int i = 0; !term_flag && (iterations == 0 || i < iterations); i++) {
		sink += tick(i);
		nanosleep(&one_ms, NULL);
	}

	append_line(record_fd, "counts usr1=%d alrm=%d ticks=%d", (int)usr1_count,
		    (int)alrm_count, tick_count);
	return 0;
}
