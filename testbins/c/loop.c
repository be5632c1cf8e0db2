/*
 * loop.c - the workhorse testbin: one thread calling process_order() in a loop.
 *
 * Used by the integration tests for: attach/detach, planting a log point at a
 * source line (// @probe process_order_body), reading struct / enum / double /
 * string / pointer arguments and globals, measuring how long the target is
 * stopped (--heartbeat), PIE vs non-PIE, split debug info (loop-split), and
 * binaries without debug info (loop-nodebug, loop-stripped).
 *
 * Values at the probe line, for call number seq = 0, 1, 2, ...:
 *   o->id    = seq                     o->qty  = seq % 7 + 1
 *   o->price = 1.5 + 0.25 * seq        o->st   = (enum status)(seq % 3)
 *   o->note  = notes[seq % 2]          name    = names[seq % 3]
 *   *counter = global_counter = seq    global_name = name
 *
 * Options:
 *   --iterations N     number of calls, 0 = forever (default 0)
 *   --interval-us U    sleep between iterations in microseconds (default 1000)
 *   --record FILE      append "call seq=<n> id=<id> qty=<qty> name=<name>" per call
 *   --heartbeat FILE   append "stall at_ns=<t> gap_us=<g>" whenever the gap
 *                      between two consecutive iteration starts exceeds
 *                      interval + 300 us (t = CLOCK_MONOTONIC ns at the end of
 *                      the gap)
 *   --timing FILE      at the end, append "timing loop_ns=<ns> iterations=<n>"
 *                      (the loop's wall time and the calls made, for scry bench)
 *   --threads N        N > 1: N threads each make --iterations calls (no
 *                      heartbeat, no records of their own order data)
 *   --int3             execute an int3 before each call (for scry bench's
 *                      ptrace floor: a tracer that only continues it)
 *   --wait-stdin       after "ready pid=<pid>", block until one byte (or EOF)
 *                      arrives on stdin before the first iteration
 */
#include "testbin.h"

#include <pthread.h>

enum status { NEW, PAID, SHIPPED };

struct order {
	int id;
	int qty;
	double price;
	enum status st;
	const char *note;
};

/* Globals the tests read through the tracer. */
int global_counter;
const char *global_name = "none";
/* Bumped on the probe line: a side effect -O2 cannot remove. */
volatile int process_order_hits;

static int heartbeat_fd = -1;
/* --int3: each iteration executes an int3 of its own (the ptrace floor: a tracer that
 * only continues it). */
static int int3_mode;

#ifdef SCRY_WRONG_BUILD
/* Only in the deliberately different build whose debug info tests/build.rs
 * plants under debug-wrong/: shifts every address that follows. */
__attribute__((noinline, used)) int wrong_build_padding(int x)
{
	return x * 7 + 3;
}
#endif

__attribute__((noinline, noclone))
int process_order(struct order *o, const char *name, int *counter)
{
	int seq = *counter;
	double total = o->qty * o->price;

	process_order_hits++; append_line(record_fd, "call seq=%d id=%d qty=%d name=%s", seq, o->id, o->qty, name); // @probe process_order_body
	*counter = seq + 1;
	return (int)total + (int)o->st;
}

/* One of --threads N workers: the same calls as main's loop, without the heartbeat. */
struct worker_arg {
	long iterations;
	long interval_us;
	int index;
	long sink;
};

static void *worker(void *p)
{
	struct worker_arg *a = p;
	int counter = 0;

	for (long seq = 0; seq < a->iterations; seq++) {
		struct order o = { (int)seq, (int)(seq % 7) + 1, 1.5 + 0.25 * (double)seq,
				   (enum status)(seq % 3), "worker" };
		if (int3_mode)
			__asm__ volatile("int3");
		a->sink += process_order(&o, "worker", &counter);
		sleep_us(a->interval_us);
	}
	return NULL;
}

/* Runs --threads N workers of --iterations each (N > 1) and returns when all are done. */
static void run_workers(int threads, long iterations, long interval_us)
{
	pthread_t tids[64];
	struct worker_arg args[64];

	if (threads > 64)
		threads = 64;
	for (int i = 0; i < threads; i++) {
		args[i] = (struct worker_arg){ iterations, interval_us, i, 0 };
		if (pthread_create(&tids[i], NULL, worker, &args[i]) != 0)
			exit(3);
	}
	for (int i = 0; i < threads; i++)
		pthread_join(tids[i], NULL);
}

/* A function the loop never calls: tests/attach.rs plants a probe on it by
 * name (`usage`), so keep it a real function. */
static void usage(void)
{
	usage_exit("loop [--iterations N] [--interval-us U] [--record FILE] "
		   "[--heartbeat FILE] [--timing FILE] [--threads N] [--int3] [--wait-stdin]");
}

int main(int argc, char **argv)
{
	static const char *names[] = { "alice", "bob", "carol" };
	static const char *notes[] = { "rush", "gift wrap" };
	long iterations = 0, interval_us = 1000;
	int timing_fd = -1, threads = 1;
	long long started;
	volatile long sink = 0;
	long long prev = 0;

	for (int i = 1; i < argc; i++) {
		if (!opt_long(argc, argv, &i, "--iterations", &iterations) &&
		    !opt_long(argc, argv, &i, "--interval-us", &interval_us) &&
		    !opt_file(argc, argv, &i, "--heartbeat", &heartbeat_fd) &&
		    !opt_file(argc, argv, &i, "--timing", &timing_fd) &&
		    !opt_int(argc, argv, &i, "--threads", &threads) &&
		    !opt_flag(argv, i, "--int3", &int3_mode) &&
		    !common_option(argc, argv, &i))
			usage();
	}

	ready();
	started = now_ns();
	if (threads > 1) {
		run_workers(threads, iterations, interval_us);
		iterations *= threads;
	}

	for (long seq = 0; threads <= 1 && (iterations == 0 || seq < iterations); seq++) {
		long long now = now_ns();
		struct order o;

		if (prev != 0 && heartbeat_fd >= 0) {
			long long gap_us = (now - prev) / 1000;
			if (gap_us > interval_us + 300)
				append_line(heartbeat_fd, "stall at_ns=%lld gap_us=%lld", now, gap_us);
		}
		prev = now;

		o.id = (int)seq;
		o.qty = (int)(seq % 7) + 1;
		o.price = 1.5 + 0.25 * (double)seq;
		o.st = (enum status)(seq % 3);
		o.note = notes[seq % 2];
		global_name = names[seq % 3];
		if (int3_mode)
			__asm__ volatile("int3");
		sink += process_order(&o, global_name, &global_counter);
		sleep_us(interval_us);
	}
	if (timing_fd >= 0)
		append_line(timing_fd, "timing loop_ns=%lld iterations=%ld", now_ns() - started,
			    iterations);
	return 0;
}
