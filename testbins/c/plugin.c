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
#include <stdio.h>
#include <unistd.h>

/* Number of plugin_fn() calls; bumped on the probe line. */
volatile int plugin_calls;

static int plugin_record_fd = -1;

/* Sets the fd that plugin_fn() appends its records to (-1: none). */
void plugin_set_record_fd(int fd)
{
	plugin_record_fd = fd;
}

/* Appends "call fn=plugin i=<i>" with a single write(). */
__attribute__((noinline))
static void plugin_record(int i)
{
	char buf[64];
	int n;

	if (plugin_record_fd < 0)
		return;
	n = snprintf(buf, sizeof buf, "call fn=plugin i=%d\n", i);
	if (write(plugin_record_fd, buf, (size_t)n) != n)
		_exit(3);
}

int plugin_fn(int i)
{
	int v = i * 3 + 2;

	plugin_calls++; plugin_record(i); // @probe plugin_body
	return v;
}
