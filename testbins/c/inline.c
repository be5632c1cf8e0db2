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
#include "testbin.h"

/* Helper executions so far; bumped on the probe line. */
volatile int helper_hits;
/* Which site_*() function is calling helper (1, 2 or 3). */
volatile int current_site;

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
	usage_exit("inline [--iterations N] [--interval-us U] [--record FILE] [--wait-stdin]");
}

int main(int argc, char **argv)
{
	long iterations = 0, interval_us = 1000;
	volatile int sink = 0;

	for (int i = 1; i < argc; i++) {
		if (!opt_long(argc, argv, &i, "--iterations", &iterations) &&
		    !opt_long(argc, argv, &i, "--interval-us", &interval_us) &&
		    !common_option(argc, argv, &i))
			usage();
	}

	ready();

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
