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
#include "testbin.h"
#include <signal.h>
#include <sys/time.h>

static volatile sig_atomic_t usr1_count;
static volatile sig_atomic_t alrm_count;
static volatile sig_atomic_t term_flag;

static int record_ticks;

/* Number of tick() calls; bumped on the probe line. */
volatile int tick_count;

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
	usage_exit("signals [--itimer-ms M] [--iterations N] [--record FILE] "
		   "[--record-ticks] [--wait-stdin]");
}

int main(int argc, char **argv)
{
	long itimer_ms = 0, iterations = 0;
	volatile int sink = 0;
	const struct timespec one_ms = { 0, 1000000 };

	for (int i = 1; i < argc; i++) {
		if (!opt_long(argc, argv, &i, "--itimer-ms", &itimer_ms) &&
		    !opt_long(argc, argv, &i, "--iterations", &iterations) &&
		    !opt_flag(argv, i, "--record-ticks", &record_ticks) &&
		    !common_option(argc, argv, &i))
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

	ready();

	for (int i = 0; !term_flag && (iterations == 0 || i < iterations); i++) {
		sink += tick(i);
		nanosleep(&one_ms, NULL);
	}

	append_line(record_fd, "counts usr1=%d alrm=%d ticks=%d", (int)usr1_count,
		    (int)alrm_count, tick_count);
	return 0;
}
