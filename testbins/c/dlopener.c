/*
 * dlopener.c - calls into a linked shared library, and later dlopen()s another.
 *
 * Used by the integration tests for: probes in libscryshared.so (linked, found
 * through the rpath $ORIGIN/../lib), and pending probes in libscryplugin.so
 * that must start firing once the plugin is dlopen()ed while the target runs.
 *
 * Each iteration calls shared_fn(i) (records "call fn=shared i=<i>"), and once
 * the plugin is loaded also plugin_fn(i) (records "call fn=plugin i=<i>"),
 * then sleeps --interval-us. With --dlopen-on-stdin it polls stdin without
 * blocking every iteration; when a byte arrives it dlopen()s the plugin and
 * records "dlopened" (before that iteration's plugin_fn call).
 *
 * Options:
 *   --iterations N      iterations, 0 = forever (default 0)
 *   --interval-us U     sleep between iterations (default 1000)
 *   --plugin PATH       the plugin to dlopen (default:
 *                       <dir of this executable>/../lib/libscryplugin.so)
 *   --dlopen-on-stdin   dlopen the plugin when a byte arrives on stdin
 *   --dlopen-at I       dlopen the plugin at iteration I
 *   --record FILE       append the records above
 *   --wait-stdin        after "ready pid=<pid>", block until one byte (or EOF)
 *                       (that byte does not count for --dlopen-on-stdin)
 */
#include "testbin.h"
#include <dlfcn.h>
#include <poll.h>

/* From libscryshared.so. */
extern int shared_fn(int i);
extern void shared_set_record_fd(int fd);

/* 1 if a byte was read from stdin now, 0 if none is there yet, -1 on EOF. */
static int poll_stdin_byte(void)
{
	struct pollfd p = { .fd = 0, .events = POLLIN };
	char c;

	if (poll(&p, 1, 0) <= 0)
		return 0;
	if (read(0, &c, 1) == 1)
		return 1;
	return -1;
}

typedef int (*plugin_fn_t)(int);

static plugin_fn_t load_plugin(const char *path)
{
	void *handle = dlopen(path, RTLD_NOW);
	void (*set_fd)(int);
	plugin_fn_t fn;

	if (!handle) {
		fprintf(stderr, "dlopen: %s\n", dlerror());
		exit(2);
	}
	fn = (plugin_fn_t)dlsym(handle, "plugin_fn");
	set_fd = (void (*)(int))dlsym(handle, "plugin_set_record_fd");
	if (!fn || !set_fd) {
		fprintf(stderr, "dlsym: %s\n", dlerror());
		exit(2);
	}
	set_fd(record_fd);
	append_line(record_fd, "dlopened");
	return fn;
}

static void usage(void)
{
	usage_exit("dlopener [--iterations N] [--interval-us U] [--plugin PATH] "
		   "[--dlopen-on-stdin] [--dlopen-at I] [--record FILE] [--wait-stdin]");
}

int main(int argc, char **argv)
{
	long iterations = 0, interval_us = 1000, dlopen_at = -1;
	int on_stdin = 0;
	char plugin_path[PATH_MAX + 32] = "";
	plugin_fn_t plugin = NULL;
	volatile int sink = 0;

	for (int i = 1; i < argc; i++) {
		const char *plugin_arg = opt_value(argc, argv, &i, "--plugin");

		if (plugin_arg)
			snprintf(plugin_path, sizeof plugin_path, "%s", plugin_arg);
		else if (!opt_long(argc, argv, &i, "--iterations", &iterations) &&
			 !opt_long(argc, argv, &i, "--interval-us", &interval_us) &&
			 !opt_flag(argv, i, "--dlopen-on-stdin", &on_stdin) &&
			 !opt_long(argc, argv, &i, "--dlopen-at", &dlopen_at) &&
			 !common_option(argc, argv, &i))
			usage();
	}
	if (!plugin_path[0])
		path_beside_exe(plugin_path, sizeof plugin_path, "../lib/libscryplugin.so");
	shared_set_record_fd(record_fd);

	ready();

	for (long i = 0; iterations == 0 || i < iterations; i++) {
		if (!plugin && on_stdin) {
			int got = poll_stdin_byte();
			if (got < 0)
				on_stdin = 0; /* stdin closed: stop polling */
			else if (got > 0)
				plugin = load_plugin(plugin_path);
		}
		if (!plugin && i == dlopen_at)
			plugin = load_plugin(plugin_path);

		sink += shared_fn((int)i);
		if (plugin)
			sink += plugin((int)i);
		sleep_us(interval_us);
	}
	return 0;
}
