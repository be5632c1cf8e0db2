/*
 * plugin.c - libscryplugin.so, a shared library that is NOT linked into any
 * testbin: dlopener dlopen()s it while it runs.
 *
 * Used by the integration tests for: a probe planted (pending) at a line of a
 * library that is not loaded yet, which must become active when the library
 * is dlopen()ed, without stopping the target for long.
 *
 * plugin_fn(i) records "call fn=plugin i=<i>" on its probe line, to the fd
 * given by plugin_set_record_fd() (nothing is recorded while it is -1).
 */
#include "testbin.h"

/* Number of plugin_fn() calls; bumped on the probe line. */
volatile int plugin_calls;

/* Sets the fd that plugin_fn() appends its records to (-1: none). */
void plugin_set_record_fd(int fd)
{
	record_fd = fd;
}

int plugin_fn(int i)
{
	int v = i * 3 + 2;

	plugin_calls++; append_line(record_fd, "call fn=plugin i=%d", i); // @probe plugin_body
	return v;
}
