/*
 * inline.c - one source line that exists in several inlined copies.
 *
 * Used by the integration tests for: a probe at a line of an always_inline
 * function (// @probe helper_body) must be planted at every inlined instance
 * (one per calling function, at -O0 as at -O2), each hit counted once, and the
 * inlined parameter x must be readable at each instance.
 *
 * helper(x) is inlined into site_one(), site_two() and site_three() (each
 * noinline). Every iteration i calls site_one(i) once, site_two(i + k) for
 * k = 0..1 and site_three(i + k) for k = 0..2, so per iteration helper runs
 * 6 times: x = i (site 1); x = 2*(i+k) (site 2); x = 3*(i+k) (site 3).
 * Before calling helper each site stores its number in the global
 * current_site, which the probe line records.
 *
 * Options:
 *   --iterations N    iterations, 0 = forever (default 0)
 *   --interval-us U   sleep between iterations (default 1000)
 *   --record FILE     append "call site=<1|2|3> x=<x>" per helper execution,
 *                     and "total <n>" (n = helper executions = 6*N) at the end
 *   --wait-stdin      after "ready pid=<pid>", block until one byte (or EOF)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int record_fd = -1;

/* Helper executions so far; bumped on the probe line. */
volatile int helper_hits;
/* Which site_*() function is calling helper (1, 2 or 3). */
volatile int current_site;

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

static void sleep_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
	if (us > 0)
		nanosleep(&ts, NULL);
}

/* Records "call site=<site> x=<x>"; returns 0. */
__attribute__((noinline))
static int record_call(int site, int x)
{
	append_line(record_fd, "call site=%d x=%d", site, x);
	return 0;
}

static inline __attribute__((always_inline)) int helper(int x)
{
	int y;

	helper_hits++; y = x * 3 + 7 + record_call(current_site, x); // @probe helper_body
	return y ^ (x >> 1);
}

__attribute__((noinline, noclone))
int site_one(int i)
{
	current_site = 1;
	return helper(i) + 1;
}

__attribute__((noinline, noclone))
int site_two(int i)
{
	current_site = 2;
	return helper(i * 2) + 2;
}

__attribute__((noinline, noclone))
int site_three(int i)
{
	current_site = 3;
	return helper(i * 3) + 3;
}

static void usage(void)
{
	fprintf(stderr, "usage: inline [--iterations N] [--interval-us U] [--record FILE] "
			"[--wait-stdin]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	long iterations = 0, interval_us = 1000;
	int wait = 0;
	volatile int sink = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--iterations") && i + 1 < argc)
			iterations = strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--interval-us") && i + 1 < argc)
			interval_us = strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--record") && i + 1 < argc)
			record_fd = open_append(argv[++i]);
		else if (!strcmp(argv[i], "--wait-stdin"))
			wait = 1;
		else
			usage();
	}

	printf("ready pid=%d\n", (int)getpid());
	fflush(stdout);
	if (wait)
		wait_stdin();

	for (long n = 0; iterations == 0 || n < iterations; n++) {
		int i = (int)n;

		sink += site_one(i);
		for (int k = 0; k < 2; k++)
			sink += site_two(i + k);
		for (int k = 0; k < 3; k++)
			sink += site_three(i + k);
		sleep_us(interval_us);
	}

	append_line(record_fd, "total %d", helper_hits);
	return 0;
}
