/*
 * exprs.c - the oracle for scry's expression language: at the probe line,
 * evaluate() has a struct of every C type family (char, short, int, long,
 * long long, signed and unsigned; float, double; _Bool; an enum; bitfields;
 * arrays of one and two dimensions; a nested struct; a pointer; a C string
 * and a char array) and three scalar arguments. Right after the probe line
 * it evaluates every expression of EXPRS with C's own semantics (promotions,
 * conversions, truncating division, shifts) and records each value; the test
 * evaluates the same text with scry at the same hit and compares.
 *
 * The test reads the expressions from this file: one `X(expr)` per line of
 * EXPRS, one `S(expr, "literal")` per line of STRINGS (scry compares strings
 * by content: `expr == "literal"`, which C spells with strcmp).
 *
 * Usage: exprs [--iterations N] [--interval-us U] [--record FILE] [--wait-stdin]
 *   Each call records "value seq=<seq> k=<index> v=<value>" for EXPRS, in
 *   order, and "string seq=<seq> k=<index> v=<0|1>" for STRINGS.
 */
#include "testbin.h"

/* The expressions compare signed with unsigned on purpose (C converts; scry must too). */
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wtype-limits"

enum color { RED = 1, GREEN = 2, BLUE = 4 };

struct flags {
	unsigned ready : 1;
	int level : 3;
	unsigned mode : 4;
};

struct point {
	int x;
	int y;
};

struct sample {
	char c;
	signed char sc;
	unsigned char uc;
	short s;
	unsigned short us;
	int i;
	unsigned u;
	long l;
	unsigned long ul;
	long long ll;
	unsigned long long ull;
	float f;
	double d;
	_Bool b;
	enum color col;
	struct flags fl;
	int arr[4];
	int grid[2][3];
	struct point pt;
	const struct point *pp;
	const char *name;
	char tag[8];
};

/* Every expression, as scry must evaluate it. No commas outside parentheses. */
#define EXPRS \
	X(s->c + 1) \
	X(s->sc * 3) \
	X(s->uc + s->sc) \
	X(s->s - 40000) \
	X(s->us * 2) \
	X(s->i / 7) \
	X(s->i % 7) \
	X(-s->i / 7) \
	X(s->u / 3) \
	X(s->u - 10) \
	X(s->l * 1000) \
	X(s->ul >> 3) \
	X(s->ll << 4) \
	X(s->ull % 1000) \
	X(s->i < s->u) \
	X(-1 < s->u) \
	X(s->sc < s->uc) \
	X(3000000000 + s->i) \
	X(0xff & s->i) \
	X(s->u | 0x100) \
	X(s->ul ^ s->l) \
	X(~s->i) \
	X(~s->uc) \
	X(s->i >> 2) \
	X(s->u >> 2) \
	X(1 << k) \
	X(!s->i) \
	X(!s->pp) \
	X(s->i && s->d) \
	X(s->b || k) \
	X(k > 2 && s->name[0] == 'b') \
	X(s->d > 1.5) \
	X(s->f <= s->d) \
	X(s->i == -s->i) \
	X(s->ll != s->l) \
	X(s->c == 'A') \
	X(s->col == BLUE) \
	X(s->col != RED) \
	X(s->col + 0) \
	X(k > 1 ? s->i : s->l) \
	X(s->b ? 10 : 20) \
	X(k ? scale : 1) \
	X(s->d * 2) \
	X(s->f + 0.5) \
	X(s->d / 3) \
	X(-s->d) \
	X(scale * k) \
	X(s->i + s->d) \
	X((int)s->d) \
	X((int)-s->d) \
	X((unsigned char)s->i) \
	X((short)s->l) \
	X((double)s->i / 4) \
	X((float)s->d) \
	X((long)s->f) \
	X((unsigned)s->i) \
	X((long long)s->u) \
	X((char)(s->i + 300)) \
	X(1e3 + s->d) \
	X(s->d == 2.75) \
	X(s->pp->x) \
	X((*s->pp).y) \
	X(s->pp[0].y) \
	X(&s->arr[3] - &s->arr[1]) \
	X(*(s->arr + 2)) \
	X(s->arr[k % 4]) \
	X(s->grid[1][2]) \
	X(s->grid[k % 2][1]) \
	X(s->pp == &s->pt) \
	X(s->pp != 0) \
	X(s->name[1]) \
	X(*s->name) \
	X(s->tag[0]) \
	X(s->pt.x + s->pt.y) \
	X(s->fl.ready) \
	X(s->fl.level) \
	X(s->fl.mode * 2) \
	X(sizeof(struct sample)) \
	X(sizeof s->arr) \
	X(sizeof(s->grid[0])) \
	X(sizeof *s->pp) \
	X(sizeof(enum color)) \
	X('\n' + small) \
	X(small * small) \
	X(k * -3 % 5) \
	X((k + 1) * (k - 1) / 2)

#define STRINGS \
	S(s->name, "bob") \
	S(s->name, "alice") \
	S(s->tag, "t-2") \
	S(s->name, "")

static const struct point elsewhere = { -7, 70 };
/* Bumped on the probe line: a side effect -O2 cannot remove. */
volatile int exprs_hits;

__attribute__((noinline)) static void rec_i(int seq, int k, long long v)
{
	append_line(record_fd, "value seq=%d k=%d v=%lld", seq, k, v);
}

__attribute__((noinline)) static void rec_u(int seq, int k, unsigned long long v)
{
	append_line(record_fd, "value seq=%d k=%d v=%llu", seq, k, v);
}

__attribute__((noinline)) static void rec_f(int seq, int k, double v)
{
	append_line(record_fd, "value seq=%d k=%d v=%.17g", seq, k, v);
}

/* Each expression's value, printed as its C type says. */
#define REC(k, e) \
	_Generic((e), float: rec_f, double: rec_f, unsigned int: rec_u, \
		 unsigned long: rec_u, unsigned long long: rec_u, default: rec_i)(seq, k, (e))

__attribute__((noinline, noclone))
long evaluate(const struct sample *s, int k, unsigned char small, double scale, int seq)
{
	int idx = 0;

	exprs_hits++; // @probe exprs_body
#define X(e) REC(idx++, e);
	EXPRS
#undef X
	idx = 0;
#define S(e, lit) append_line(record_fd, "string seq=%d k=%d v=%d", seq, idx++, strcmp((e), lit) == 0);
	STRINGS
#undef S
	return s->i + k;
}

/* Lines whose first instruction changes only registers: scry carries them out on the
 * registers at a hit instead of running them from a slot (tests/emulation.rs). */
__attribute__((noinline, noclone))
int emulated(int seq)
{
	int out = seq;

	__asm__ volatile("nop"); // @probe emu_nop
	__asm__ volatile("lea 8(%%rsp), %%rax" ::: "rax"); // @probe emu_lea
	__asm__ volatile("mov %%rsp, %%rax" ::: "rax"); // @probe emu_mov
	/* rsp is never 0: ZF is clear, so the jnz is taken; emulating it wrong runs the ud2
	 * (SIGILL), as would a wrong jmp. */
	__asm__ volatile("test %%rsp, %%rsp" ::: "cc"); // @probe emu_test
	__asm__ volatile("jnz 1f\n\tud2\n1:" ::: "cc"); // @probe emu_jnz
	__asm__ volatile("jmp 1f\n\tud2\n1:"); // @probe emu_jmp
	append_line(record_fd, "emulated seq=%d", seq);
	return out;
}

/* Recursive (not a loop, at -O2 too): function@entry and function@return must pair up
 * per frame (tests/returns.rs). */
__attribute__((noinline, noipa))
int recurse(int n)
{
	int r;

	if (n <= 0)
		return 0;
	r = recurse(n - 1);
	__asm__ volatile("" ::: "memory");
	return r + n;
}

/* Never called: a line that starts with an instruction scry refuses to displace (a syscall
 * run from a slot would report the slot's address), for the set-time error. */
__attribute__((noinline, noclone, used))
void refused_site(void)
{
	__asm__ volatile("syscall" ::: "rax", "rcx", "r11", "memory"); // @probe refused_syscall
	__asm__ volatile("nop");
}

static void usage(void)
{
	usage_exit("exprs [--iterations N] [--interval-us U] [--record FILE] [--wait-stdin]");
}

int main(int argc, char **argv)
{
	static const char *names[] = { "alice", "bob", "carol" };
	long iterations = 0, interval_us = 1000;
	volatile long sink = 0;

	for (int i = 1; i < argc; i++) {
		if (!opt_long(argc, argv, &i, "--iterations", &iterations) &&
		    !opt_long(argc, argv, &i, "--interval-us", &interval_us) &&
		    !common_option(argc, argv, &i))
			usage();
	}
	ready();

	for (int seq = 0; iterations == 0 || seq < iterations; seq++) {
		struct sample smp;

		memset(&smp, 0, sizeof smp);
		smp.c = (char)('A' + seq % 3);
		smp.sc = (signed char)(-5 * seq - 3);
		smp.uc = (unsigned char)(200 + seq);
		smp.s = (short)(-1000 * seq + 7);
		smp.us = (unsigned short)(60000 + seq);
		smp.i = 37 * seq - 100;
		smp.u = (unsigned)(5 * seq + 3);
		smp.l = -123456789L * (seq + 1);
		smp.ul = 0xfedcba9876543210UL >> seq;
		smp.ll = 1LL << (20 + seq);
		smp.ull = 18446744073709551557ULL - (unsigned long long)seq;
		smp.f = 0.5f + (float)seq * 0.25f;
		smp.d = 1.25 + 0.5 * seq;
		smp.b = seq % 2 == 0;
		smp.col = seq % 3 == 0 ? RED : seq % 3 == 1 ? GREEN : BLUE;
		smp.fl.ready = (unsigned)seq & 1;
		smp.fl.level = -(seq % 4);
		smp.fl.mode = (unsigned)(seq * 3) & 15;
		for (int j = 0; j < 4; j++)
			smp.arr[j] = 10 * j + seq;
		for (int r = 0; r < 2; r++)
			for (int c = 0; c < 3; c++)
				smp.grid[r][c] = 100 * r + 10 * c + seq;
		smp.pt.x = seq;
		smp.pt.y = -seq * 2;
		smp.pp = seq % 2 ? &smp.pt : &elsewhere;
		smp.name = names[seq % 3];
		snprintf(smp.tag, sizeof smp.tag, "t-%d", seq % 1000);
		sink += evaluate(&smp, seq % 5, (unsigned char)(seq * 7), 0.75 * seq, seq);
		sink += emulated(seq);
		sink += recurse(seq % 4);
		sleep_us(interval_us);
	}
	return 0;
}
