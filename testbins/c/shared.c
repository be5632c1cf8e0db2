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
#include "testbin.h"

/* Number of shared_fn() calls; bumped on the probe line. */
volatile int shared_calls;

/* Sets the fd that shared_fn() appends its records to (-1: none). */
void shared_set_record_fd(int fd)
{
	record_fd = fd;
}

int shared_fn(int i)
{
	int v = i * 2 + 1;

	shared_calls++; append_line(record_fd, "call fn=shared i=%d", i); // @probe shared_body
	return v;
}
