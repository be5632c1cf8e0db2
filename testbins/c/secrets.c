/*
 * secrets.c - a program holding secrets at its probe site, for the redaction tests: a card
 * number, an e-mail address, a password, a bearer token and a JWT, next to harmless values.
 * Nothing of the secrets may leave the host through scry (tests/security.rs).
 *
 * Each call charge(&p, seq) has, at the marked line:
 *   p->card = "4111 1111 1111 1111"   p->email = "alice@example.com"
 *   p->password = "hunter2-<seq>"      p->auth = "Bearer abc.def-ghi"
 *   p->session = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
 *   p->amount = 100 + seq              p->item = "book-<seq>"
 * and records "charge seq=<seq> amount=<amount>" after it.
 *
 * Usage: secrets [--iterations N] [--interval-us U] [--record FILE] [--wait-stdin]
 */
#include "testbin.h"

struct payment {
	const char *card;
	const char *email;
	char password[32];
	const char *auth;
	const char *session;
	int amount;
	char item[16];
};

/* Bumped on the probe line: a side effect -O2 cannot remove. */
volatile int charge_hits;

__attribute__((noinline, noclone))
int charge(const struct payment *p, int seq)
{
	charge_hits++; // @probe charge_body
	append_line(record_fd, "charge seq=%d amount=%d", seq, p->amount);
	return p->amount;
}

static void usage(void)
{
	usage_exit("secrets [--iterations N] [--interval-us U] [--record FILE] [--wait-stdin]");
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
	ready();
	for (int seq = 0; iterations == 0 || seq < iterations; seq++) {
		struct payment p = {
			.card = "4111 1111 1111 1111",
			.email = "alice@example.com",
			.auth = "Bearer abc.def-ghi",
			.session = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl",
			.amount = 100 + seq,
		};
		snprintf(p.password, sizeof p.password, "hunter2-%d", seq % 1000);
		snprintf(p.item, sizeof p.item, "book-%d", seq % 1000);
		sink += charge(&p, seq);
		sleep_us(interval_us);
	}
	return 0;
}
