/* SPDX-License-Identifier: MIT */
/*
 * zpage-bench - measures zpage on this machine.
 *
 *   zpage-bench [quick]   the default suite:
 *     - cost of one zeroing order-9 (2 MiB) allocation from fresh
 *       (OS-zeroed), zeroed (init_on_free) and dirty memory;
 *     - order-0 alloc+free pairs per second, 1 and 2 threads.
 *
 * Every figure is a median over repeated runs, with the 10th-90th
 * percentile spread; rows that are compared were measured in the same run.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "zpage.h"

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;

	return a < b ? -1 : a > b;
}

/* Sorts v; returns the p-th percentile (0..100). */
static double pct(double *v, size_t n, double p)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return v[(size_t)((n - 1) * p / 100.0 + 0.5)];
}

static struct zp_arena *arena_or_die(unsigned flags)
{
	struct zp_config c = {.flags = flags}; /* the embedded default: 1 GiB */
	struct zp_arena *a = zp_arena_create(&c);

	if (!a) {
		fprintf(stderr, "zpage-bench: zp_arena_create: %s\n", strerror(errno));
		exit(1);
	}
	return a;
}

#define NBLK   128 /* order-9 blocks per round: 256 MiB */
#define ROUNDS 5

enum src { FRESH, ZEROED, DIRTY };

/* Times NBLK zeroing order-9 allocations from memory in state @src. */
static void order9_round(enum src src, double *out)
{
	struct zp_arena *a = arena_or_die(src == ZEROED ? ZP_INIT_ON_FREE : 0);
	void *p[NBLK];

	if (src != FRESH) {
		for (int i = 0; i < NBLK; i++) {
			p[i] = zp_alloc_pages(a, 0, 9, ZP_USER_ADDR_NONE);
			memset(p[i], 0x5a, ZP_PAGE_SIZE << 9);
		}
		for (int i = 0; i < NBLK; i++)
			zp_free_pages(a, p[i], 9);
	}
	for (int i = 0; i < NBLK; i++) {
		double t0 = now_ns();

		p[i] = zp_alloc_pages(a, ZP_GFP_ZERO, 9, (uintptr_t)i << 21);
		out[i] = now_ns() - t0;
		if (!p[i]) {
			fprintf(stderr, "zpage-bench: allocation failed\n");
			exit(1);
		}
	}
	zp_arena_destroy(a);
}

static void bench_order9(void)
{
	static const char *names[] = {"fresh (OS-zeroed, reported)", "zeroed (init_on_free)", "dirty"};
	static double v[3][NBLK * ROUNDS];

	/* interleave the sources so drift on a shared machine hits all alike */
	for (int r = 0; r < ROUNDS; r++)
		for (int s = 0; s < 3; s++)
			order9_round((enum src)s, v[s] + r * NBLK);
	printf("zeroing order-9 (2 MiB) allocation, %d allocations each\n", NBLK * ROUNDS);
	printf("  %-30s %12s %12s %12s %10s\n", "from", "median us", "p10 us", "p90 us", "GB/s");
	for (int s = 0; s < 3; s++) {
		double med = pct(v[s], NBLK * ROUNDS, 50);

		printf("  %-30s %12.2f %12.2f %12.2f %10.1f\n", names[s], med / 1e3, pct(v[s], NBLK * ROUNDS, 10) / 1e3,
		       pct(v[s], NBLK * ROUNDS, 90) / 1e3, (double)(ZP_PAGE_SIZE << 9) / med);
	}
	printf("  (GB/s = 2 MiB / median time: the effective zeroing rate)\n\n");
}

struct churn_arg {
	struct zp_arena *a;
	double seconds;
	unsigned long ops;
};

static void *churn0(void *arg)
{
	struct churn_arg *c = arg;
	double end = now_ns() + c->seconds * 1e9;
	unsigned long ops = 0;

	while (now_ns() < end) {
		for (int i = 0; i < 256; i++) {
			void *p = zp_alloc_pages(c->a, 0, 0, ZP_USER_ADDR_NONE);

			if (!p || zp_free_pages(c->a, p, 0)) {
				fprintf(stderr, "zpage-bench: order-0 churn failed\n");
				exit(1);
			}
		}
		ops += 256;
	}
	c->ops = ops;
	return NULL;
}

static void bench_order0(void)
{
	double v[2][ROUNDS];

	for (int r = 0; r < ROUNDS; r++) {
		for (int nt = 1; nt <= 2; nt++) {
			struct zp_arena *a = arena_or_die(0);
			struct churn_arg c[2] = {{a, 0.2, 0}, {a, 0.2, 0}};
			pthread_t t[2];
			double total = 0;

			for (int i = 0; i < nt; i++)
				pthread_create(&t[i], NULL, churn0, &c[i]);
			for (int i = 0; i < nt; i++) {
				pthread_join(t[i], NULL);
				total += c[i].ops;
			}
			v[nt - 1][r] = total / 0.2;
			zp_arena_destroy(a);
		}
	}
	printf("order-0 alloc+free pairs per second (%d runs of 0.2 s)\n", ROUNDS);
	printf("  %-30s %12s %12s %12s\n", "threads", "median M/s", "min M/s", "max M/s");
	for (int nt = 1; nt <= 2; nt++)
		printf("  %-30d %12.2f %12.2f %12.2f\n", nt, pct(v[nt - 1], ROUNDS, 50) / 1e6,
		       pct(v[nt - 1], ROUNDS, 0) / 1e6, pct(v[nt - 1], ROUNDS, 100) / 1e6);
	printf("\n");
}

static void usage(FILE *f)
{
	fprintf(f, "usage: zpage-bench [quick]\n"
		   "  quick   zeroing order-9 allocation cost from fresh, zeroed and dirty memory;\n"
		   "          order-0 alloc+free throughput with 1 and 2 threads (the default)\n");
}

int main(int argc, char **argv)
{
	if (argc > 2 || (argc == 2 && strcmp(argv[1], "quick"))) {
		if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
			usage(stdout);
			return 0;
		}
		fprintf(stderr, "zpage-bench: unknown argument '%s'\n", argv[1]);
		usage(stderr);
		return 2;
	}
	bench_order9();
	bench_order0();
	return 0;
}
