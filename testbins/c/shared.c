/*
 * shared.c - libscryshared.so, a shared library dlopener is linked against
 * (loaded by the dynamic linker at startup, found through dlopener's rpath).
 *
 * Used by the integration tests for: probes at source lines inside a shared
 * library that is mapped at a load address only known at run time.
 *
 * shared_fn(i) records "call fn=shared i=<i>" on its probe line, to the fd
 * given by shared_set_record_fd() (nothing is recorded while it is -1).
 */
#include <stdio.h>
#include <unistd.h>

/* Number of shared_fn() calls; bumped on the probe line. */
volatile int shared_calls;

static int shared_record_fd = -1;

/* Sets the fd that shared_fn() appends its records to (-1: none). */
void shared_set_record_fd(int fd)
{
	shared_record_fd = fd;
}

/* Appends "call fn=shared i=<i>" with a single write(). */
__attribute__((noinline))
static void shared_record(int i)
{
	char buf[64];
	int n;

	if (shared_record_fd < 0)
		return;
	n = snprintf(buf, sizeof buf, "call fn=shared i=%d\n", i);
	if (write(shared_record_fd, buf, (size_t)n) != n)
		_exit(3);
}

int shared_fn(int i)
{
	int v = i * 2 + 1;

	shared_calls++; shared_record(i); // @probe shared_body
	return v;
}
