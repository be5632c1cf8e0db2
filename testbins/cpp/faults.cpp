/*
 * faults.cpp - values that would hurt a careless debugger: null and wild
 * pointers, a cyclic list, a list deeper than the snapshot depth, a string
 * longer than the string limit, and std containers made of garbage (what an
 * uninitialised variable looks like: a std::string with a wild pointer and a
 * huge length, a std::vector whose end is terabytes past its start, a
 * std::map with a wild root and a huge node count).
 *
 * Every iteration seq = 0, 1, ... calls, with the same values each time,
 *
 * int inspect(const Holder *h, const std::string *junk_str,
 *             const std::vector<int> *junk_vec, const std::map<int, int> *junk_map,
 *             int seq)                                   [probe inspect_body]
 *   h->null_ptr = nullptr        h->wild_ptr = (int *)0x10 (never mapped)
 *   h->ring     = a -> b -> c -> a (values 1, 2, 3)
 *   h->chain    = 10 nodes, values 0..9, the last one's next = nullptr
 *   h->long_str = 4000 'x' then NUL
 *   h->count    = seq
 * and records "inspect seq=<seq> ring=<sum of the ring's 3 values>
 * chain=<sum of the chain's values> long=<strlen of long_str>" right after the
 * probe line (so the program proves it still sees its own data intact).
 *
 * Usage: faults [--iterations N] [--interval-us U] [--record FILE] [--wait-stdin]
 */
#include "testbin.h"

#include <map>
#include <new>
#include <string>
#include <vector>

struct Node {
	int value;
	Node *next;
};

struct Holder {
	int *null_ptr;
	int *wild_ptr;
	Node *ring;
	Node *chain;
	const char *long_str;
	int count;
};

/* Bumped on the probe line: a side effect -O2 cannot remove. */
volatile int inspect_hits;

__attribute__((noinline, noclone))
int inspect(const Holder *h, const std::string *junk_str, const std::vector<int> *junk_vec,
	    const std::map<int, int> *junk_map, int seq)
{
	int ring = 0, chain = 0;

	inspect_hits++; // @probe inspect_body
	const Node *n = h->ring;
	for (int i = 0; i < 3; i++, n = n->next)
		ring += n->value;
	for (n = h->chain; n; n = n->next)
		chain += n->value;
	append_line(record_fd, "inspect seq=%d ring=%d chain=%d long=%zu", seq, ring, chain,
		    strlen(h->long_str));
	return ring + chain + (junk_str != nullptr) + (junk_vec != nullptr) + (junk_map != nullptr);
}

static void usage(void)
{
	usage_exit("faults [--iterations N] [--interval-us U] [--record FILE] [--wait-stdin]");
}

/* The bytes of a container nobody constructed: words chosen to look like a
 * wild pointer, a huge length, a far-away end. */
static void fill_words(void *where, size_t bytes, const unsigned long *words, size_t n)
{
	memset(where, 0, bytes);
	memcpy(where, words, n * sizeof words[0] < bytes ? n * sizeof words[0] : bytes);
}

int main(int argc, char **argv)
{
	long iterations = 0, interval_us = 1000;
	volatile long sink = 0;

	for (int i = 1; i < argc; i++) {
		if (!opt_long(argc, argv, &i, "--iterations", &iterations) &&
		    !opt_long(argc, argv, &i, "--interval-us", &interval_us) &&
		    !common_option(argc, argv, &i))
			usage();
	}

	static Node a, b, c;
	a = { 1, &b };
	b = { 2, &c };
	c = { 3, &a };
	static Node chain[10];
	for (int i = 0; i < 10; i++)
		chain[i] = { i, i < 9 ? &chain[i + 1] : nullptr };
	static char long_str[4001];
	memset(long_str, 'x', 4000);

	alignas(std::string) static unsigned char str_bytes[sizeof(std::string)];
	alignas(std::vector<int>) static unsigned char vec_bytes[sizeof(std::vector<int>)];
	alignas(std::map<int, int>) static unsigned char map_bytes[sizeof(std::map<int, int>)];
	/* std::string: _M_p wild, _M_string_length huge. */
	const unsigned long str_words[] = { 0x5a5a5a5a5a5a5a5aUL, 0x5a5a5a5a5a5aUL };
	/* std::vector<int>: _M_start low and unmapped, _M_finish 16 TiB further. */
	const unsigned long vec_words[] = { 0x1000UL, 0x100000001000UL, 0x100000001000UL };
	/* std::map: comparator, then the header (color, parent = root, left, right),
	 * then the node count. */
	const unsigned long map_words[] = { 0, 0, 0x7a7a7a7a7a7aUL, 0x7a7a7a7a7a7aUL, 0x7a7a7a7a7a7aUL,
					    0x6b6b6b6b6b6bUL };
	fill_words(str_bytes, sizeof str_bytes, str_words, 2);
	fill_words(vec_bytes, sizeof vec_bytes, vec_words, 3);
	fill_words(map_bytes, sizeof map_bytes, map_words, 6);
	/* The garbage is only ever looked at through pointers, never used as
	 * objects by the program itself. */
	auto *junk_str = std::launder(reinterpret_cast<const std::string *>(str_bytes));
	auto *junk_vec = std::launder(reinterpret_cast<const std::vector<int> *>(vec_bytes));
	auto *junk_map = std::launder(reinterpret_cast<const std::map<int, int> *>(map_bytes));

	ready();

	for (int seq = 0; iterations == 0 || seq < iterations; seq++) {
		Holder h = { nullptr, reinterpret_cast<int *>(0x10), &a, &chain[0], long_str, seq };
		sink += inspect(&h, junk_str, junk_vec, junk_map, seq);
		sleep_us(interval_us);
	}
	return 0;
}
