/*
 * testbin.h - the helpers every testbin shares: the record file, option
 * parsing, the ready line and --wait-stdin, sleeping and clocks.
 *
 * Include it first (it defines _GNU_SOURCE and the usual system headers).
 * Everything here is static: each program (or library) gets its own copy of
 * what it uses. The functions are `static inline` only so that the unused
 * ones are neither compiled in nor warned about (-Wall -Wextra -Werror); at
 * -O0 the used ones stay ordinary out-of-line functions. Nothing here carries a `// @probe` marker: the
 * marked lines stay in the programs.
 *
 * The conventions the helpers implement:
 *   - records are whole lines appended to a file with one write() each, so
 *     lines of several threads or processes never interleave;
 *   - `--record FILE` opens that file (O_APPEND, O_CLOEXEC) into record_fd,
 *     `--wait-stdin` sets wait_for_stdin (see common_option());
 *   - on start a program prints "ready pid=<pid>" on stdout, then, with
 *     --wait-stdin, blocks until one byte (or EOF) arrives on stdin (ready());
 *   - a bad or unknown option prints the usage line and exits 2 (usage_exit()).
 */
#ifndef SCRY_TESTBIN_H
#define SCRY_TESTBIN_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The --record file (-1: no --record given). */
static __attribute__((unused)) int record_fd = -1;
/* Set by --wait-stdin: ready() blocks until a byte arrives. */
static __attribute__((unused)) int wait_for_stdin;

/* Appends one whole line (fmt plus '\n', cut to 255 bytes) to fd with a
 * single write(); does nothing if fd < 0. Exits 3 if the write falls short.
 * noinline (so not `inline` like the rest): a call on a probe line stays a
 * call, at -O2 too. */
__attribute__((noinline, unused, format(printf, 2, 3)))
static void append_line(int fd, const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int n;

	if (fd < 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof buf - 2)
		n = (int)sizeof buf - 2;
	buf[n++] = '\n';
	if (write(fd, buf, (size_t)n) != n)
		_exit(3);
}

/* Opens path for appending records (created 0644, closed on exec); exits 2
 * if it cannot. */
static inline int open_append(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0) {
		perror(path);
		exit(2);
	}
	return fd;
}

/* Prints "usage: <text>" on stderr and exits 2. */
static inline void usage_exit(const char *text)
{
	fprintf(stderr, "usage: %s\n", text);
	exit(2);
}

/* Option parsing, for a loop `for (int i = 1; i < argc; i++)` over argv:
 * each opt_*() checks whether argv[*i] is the option `name`; if it is (and,
 * for an option with a value, a value follows) it stores the value, steps *i
 * past it and returns 1, else it returns 0 and changes nothing. An option
 * given last without its value matches nothing, so it ends in usage_exit(). */

/* The value of option `name` at argv[*i], or NULL. */
static inline const char *opt_value(int argc, char **argv, int *i, const char *name)
{
	if (strcmp(argv[*i], name) != 0 || *i + 1 >= argc)
		return NULL;
	*i += 1;
	return argv[*i];
}

/* `name N`: *out = N (decimal). */
static inline int opt_long(int argc, char **argv, int *i, const char *name, long *out)
{
	const char *v = opt_value(argc, argv, i, name);
	if (v)
		*out = strtol(v, NULL, 10);
	return v != NULL;
}

/* `name N`: *out = (int)N. */
static inline int opt_int(int argc, char **argv, int *i, const char *name, int *out)
{
	long n;

	if (!opt_long(argc, argv, i, name, &n))
		return 0;
	*out = (int)n;
	return 1;
}

/* `name FILE`: *fd = open_append(FILE). */
static inline int opt_file(int argc, char **argv, int *i, const char *name, int *fd)
{
	const char *v = opt_value(argc, argv, i, name);
	if (v)
		*fd = open_append(v);
	return v != NULL;
}

/* The flag `name` (no value): *out = 1. */
static inline int opt_flag(char **argv, int i, const char *name, int *out)
{
	if (strcmp(argv[i], name) != 0)
		return 0;
	*out = 1;
	return 1;
}

/* The options every testbin has: `--record FILE` (into record_fd) and
 * `--wait-stdin` (into wait_for_stdin). */
static inline int common_option(int argc, char **argv, int *i)
{
	return opt_file(argc, argv, i, "--record", &record_fd) ||
	       opt_flag(argv, *i, "--wait-stdin", &wait_for_stdin);
}

/* Blocks until one byte (or EOF) can be read from stdin. */
static inline void wait_stdin(void)
{
	char c;
	while (read(0, &c, 1) < 0)
		;
}

/* Prints "ready pid=<pid>" on stdout (flushed), then with --wait-stdin waits
 * for one byte (or EOF) on stdin. */
static inline void ready(void)
{
	printf("ready pid=%d\n", (int)getpid());
	fflush(stdout);
	if (wait_for_stdin)
		wait_stdin();
}

/* Sleeps us microseconds (not at all if us <= 0; an interrupted sleep is not
 * resumed). */
static inline void sleep_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
	if (us > 0)
		nanosleep(&ts, NULL);
}

/* CLOCK_MONOTONIC in nanoseconds. */
static inline long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Writes "<directory of this executable>/<rel>" to out; exits 2 if
 * /proc/self/exe cannot be read. */
static inline void path_beside_exe(char *out, size_t size, const char *rel)
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
	snprintf(out, size, "%s/%s", exe, rel);
}

#endif /* SCRY_TESTBIN_H */
