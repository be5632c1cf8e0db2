/*
 * threads.c - many threads, continually created and exiting, all calling work().
 *
 * Used by the integration tests for: attaching to every thread of a process,
 * following new threads (clone) and thread exits while probes are planted,
 * stopping/resuming all threads when planting, and per-thread hit accounting.
 *
 * Main starts --workers W worker threads (worker ids 0, 1, 2, ...). Each worker
 * makes --calls K calls work(worker, seq) for seq = 0..K-1 with a small,
 * deterministic usleep between calls, then exits. Whenever a worker exits, main
 * joins it and starts a replacement with the next worker id, until --runs R
 * workers have been started in total (ids 0..R-1). Then main joins the rest,
 * records "total <n>" (n = number of work() calls = R*K) and exits 0.
 * Worker threads are named "work (<id>)" (a comm with a space and parentheses).
 *
 * Options:
 *   --workers W   concurrent workers (default 8)
 *   --calls K     calls of work() per worker (default 50)
 *   --runs R      workers started in total (default 40)
 *   --record FILE append "call worker=<w> seq=<s> tid=<gettid()>" per call,
 *                 and "total <n>" at the end
 *   --wait-stdin  after "ready pid=<pid>", block until one byte (or EOF) on stdin
 */
#include "testbin.h"
#include <pthread.h>
#include <semaphore.h>
#include <sys/syscall.h>

static int calls_per_worker = 50;

/* Number of work() calls so far; incremented atomically on the probe line. */
int work_calls;

/* Finished worker slots, handed from workers to main. */
static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static int *done_slots;
static int done_count;
static sem_t done_sem;

struct worker {
	pthread_t thread;
	int id;
	int slot;
};

/* noinline: an inlined call would give the probe line a second line-table
 * entry in another (inlined) block. */
__attribute__((noinline))
static int current_tid(void)
{
	return (int)syscall(SYS_gettid);
}

__attribute__((noinline, noclone))
int work(int worker, int seq)
{
	int v = worker * 1000 + seq;

	__atomic_add_fetch(&work_calls, 1, __ATOMIC_RELAXED); append_line(record_fd, "call worker=%d seq=%d tid=%d", worker, seq, current_tid()); // @probe work_body
	return v * 3 + 1;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	char name[16];
	volatile int sink = 0;

	snprintf(name, sizeof name, "work (%d)", w->id);
	pthread_setname_np(pthread_self(), name);
	for (int s = 0; s < calls_per_worker; s++) {
		sink += work(w->id, s);
		usleep(50 + (unsigned)((w->id * 37 + s) % 100));
	}

	pthread_mutex_lock(&done_lock);
	done_slots[done_count++] = w->slot;
	pthread_mutex_unlock(&done_lock);
	sem_post(&done_sem);
	return NULL;
}

static void start_worker(struct worker *w, int slot, int id)
{
	int err;

	w->id = id;
	w->slot = slot;
	err = pthread_create(&w->thread, NULL, worker_main, w);
	if (err) {
		fprintf(stderr, "pthread_create: %s\n", strerror(err));
		exit(2);
	}
}

static void usage(void)
{
	usage_exit("threads [--workers W] [--calls K] [--runs R] [--record FILE] [--wait-stdin]");
}

int main(int argc, char **argv)
{
	int workers = 8, runs = 40, started = 0;
	struct worker *slots;

	for (int i = 1; i < argc; i++) {
		if (!opt_int(argc, argv, &i, "--workers", &workers) &&
		    !opt_int(argc, argv, &i, "--calls", &calls_per_worker) &&
		    !opt_int(argc, argv, &i, "--runs", &runs) &&
		    !common_option(argc, argv, &i))
			usage();
	}
	if (workers < 1)
		workers = 1;
	if (workers > runs)
		workers = runs;

	slots = calloc((size_t)workers, sizeof *slots);
	done_slots = calloc((size_t)workers, sizeof *done_slots);
	sem_init(&done_sem, 0, 0);

	ready();

	for (; started < workers; started++)
		start_worker(&slots[started], started, started);

	/* Every finished worker is joined; its slot is reused while runs remain. */
	for (int finished = 0; finished < started; finished++) {
		int slot;

		while (sem_wait(&done_sem) != 0)
			;
		pthread_mutex_lock(&done_lock);
		slot = done_slots[--done_count];
		pthread_mutex_unlock(&done_lock);
		pthread_join(slots[slot].thread, NULL);
		if (started < runs) {
			start_worker(&slots[slot], slot, started);
			started++;
		}
	}

	append_line(record_fd, "total %d", __atomic_load_n(&work_calls, __ATOMIC_RELAXED));
	return 0;
}
