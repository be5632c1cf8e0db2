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
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* From libscryshared.so. */
extern int shared_fn(int i);
extern void shared_set_record_fd(int fd);

static int record_fd = -1;

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

static void default_plugin_path(char *out, size_t size)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	char *slash;

	if (n <= 0) {
		perror("readlink /proc/self/exe");
		exit(2);
	}
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (slash)
		*slash = '\0';
	snprintf(out, size, "%s/../lib/libscryplugin.so", exe);
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
	if (record_fd >= 0 && write(record_fd, "dlopened\n", 9) != 9)
		_exit(3);
	return fn;
}

static void usage(void)
{
	fprintf(stderr, "usage: dlopener [--iterations N] [--interval-us U] [--plugin PATH] "
			"[--dlopen-on-stdin] [--dlopen-at I] [--record FILE] [--wait-stdin]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	long iterations = 0, interval_us = 1000, dlopen_at = -1;
	int wait = 0, on_stdin = 0;
	char plugin_path[PATH_MAX + 32] = "";
	plugin_fn_t plugin = NULL;
	volatile int sink = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--iterations") && i + 1 < argc)
			iterations = strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--interval-us") && i + 1 < argc)
			interval_us = strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--plugin") && i + 1 < argc)
			snprintf(plugin_path, sizeof plugin_path, "%s", argv[++i]);
		else if (!strcmp(argv[i], "--dlopen-on-stdin"))
			on_stdin = 1;
		else if (!strcmp(argv[i], "--dlopen-at") && i + 1 < argc)
			dlopen_at = strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--record") && i + 1 < argc)
			record_fd = open_append(argv[++i]);
		else if (!strcmp(argv[i], "--wait-stdin"))
			wait = 1;
		else
			usage();
	}
	if (!plugin_path[0])
		default_plugin_path(plugin_path, sizeof plugin_path);
	shared_set_record_fd(record_fd);

	printf("ready pid=%d\n", (int)getpid());
	fflush(stdout);
	if (wait)
		wait_stdin();

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
