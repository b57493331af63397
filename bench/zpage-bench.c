/* SPDX-License-Identifier: MIT */
/*
 * zpage-bench - measures zpage on this machine.
 *
 *   zpage-bench [quick]   the default suite:
 *     - cost of one zeroing order-9 (2 MiB) allocation from fresh
 *       (OS-zeroed), zeroed (init_on_free) and dirty memory;
 *     - order-0 alloc+free pairs per second, 1 and 2 threads.
 *   zpage-bench clear     the clearing engine against Linux's orders and
 *                         plain cached / non-temporal clears (see below).
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

#include "internal.h"
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

/* The p-th percentile (0..100) of v[0..n); v is left as it was. */
static double pct(const double *v, size_t n, double p)
{
	double *c = malloc(n * sizeof(*c)), r;

	if (!c) {
		fprintf(stderr, "zpage-bench: out of memory\n");
		exit(1);
	}
	memcpy(c, v, n * sizeof(*c));
	qsort(c, n, sizeof(*c), cmp_double);
	r = c[(size_t)((n - 1) * p / 100.0 + 0.5)];
	free(c);
	return r;
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

static uint64_t cleared_by_src[3];

/* Times NBLK zeroing order-9 allocations from memory in state @src. */
static void order9_round(enum src src, double *out)
{
	struct zp_stats s0, s1;

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
	zp_arena_stats(a, &s0);
	for (int i = 0; i < NBLK; i++) {
		double t0 = now_ns();

		p[i] = zp_alloc_pages(a, ZP_GFP_ZERO, 9, (uintptr_t)i << 21);
		out[i] = now_ns() - t0;
		if (!p[i]) {
			fprintf(stderr, "zpage-bench: allocation failed\n");
			exit(1);
		}
	}
	zp_arena_stats(a, &s1);
	cleared_by_src[src] += s1.pages_cleared - s0.pages_cleared;
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
	printf("  %-30s %12s %12s %12s %10s %16s\n", "from", "median us", "p10 us", "p90 us", "GB/s", "pages cleared");
	for (int s = 0; s < 3; s++) {
		double med = pct(v[s], NBLK * ROUNDS, 50);

		printf("  %-30s %12.2f %12.2f %12.2f %10.1f %16llu\n", names[s], med / 1e3,
		       pct(v[s], NBLK * ROUNDS, 10) / 1e3, pct(v[s], NBLK * ROUNDS, 90) / 1e3,
		       (double)(ZP_PAGE_SIZE << 9) / med, (unsigned long long)cleared_by_src[s]);
	}
	printf("  (GB/s = 2 MiB / median time: the effective zeroing rate; pages cleared: zp_arena_stats)\n\n");
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

/* ---- clear: the clearing engine against the alternatives ----
 *
 * For orders 0, 4, 9 and 10: blocks of a 256 MiB ring (8x the L3), each
 * prefaulted, are cleared in turn so every block is dirty and cache-cold
 * when its clear starts.  Rows are interleaved per sample (same block size,
 * same random target) so noise on this shared machine hits all alike.
 * After each clear, the 64 KiB around the target page (clipped to the block)
 * is read, one load per cache line: that is what the caller touches first.
 */
#define RING_BYTES ((size_t)256 << 20)

enum clear_row { R_ZP_UA, R_ZP_NONE, R_LINUX, R_LINUX2017, R_CACHED, R_NT, NR_ROWS };
static const char *row_names[NR_ROWS] = {
	"zpage engine, user_addr",	"zpage engine, no address",  "linux folio_zero_user order",
	"linux 2017 target-last order", "cached clear, whole block", "non-temporal, whole block",
};

static void zero_pages_cached(char *blk, size_t first, size_t n)
{
	if (n)
		zero_cached(blk + (first << ZP_PAGE_SHIFT), n << ZP_PAGE_SHIFT);
}

/* Linux today: right of target+2, left of target-2, then target +-2, each
 * one ascending contiguous cached clear. */
static void linux_current(char *blk, size_t n, size_t t)
{
	size_t lo = t >= 2 ? t - 2 : 0, hi = t + 3 < n ? t + 3 : n;

	zero_pages_cached(blk, hi, n - hi);
	zero_pages_cached(blk, 0, lo);
	zero_pages_cached(blk, lo, hi - lo);
}

/* Linux 2017 (c79b57e462b5): pages far from the target first, one by one,
 * then the rest converging on the target from both sides, target last. */
static void linux_2017(char *blk, size_t n, size_t t)
{
	size_t base, l;

	if (2 * t + 1 <= n) { /* target in the first half: far pages are at the end */
		base = 0;
		l = t + 1;
		for (size_t i = n; i-- > 2 * l - 1;)
			zero_pages_cached(blk, i, 1);
		/* pages [0, 2l-1) converge on t = l - 1 */
		for (size_t i = 0; i + 1 < l; i++) {
			zero_pages_cached(blk, base + i, 1);
			zero_pages_cached(blk, base + 2 * (l - 1) - i, 1);
		}
	} else {
		l = n - t;
		base = n - (2 * l - 1);
		for (size_t i = 0; i < base; i++)
			zero_pages_cached(blk, i, 1);
		for (size_t i = 0; i + 1 < l; i++) {
			zero_pages_cached(blk, base + i, 1);
			zero_pages_cached(blk, n - 1 - i, 1);
		}
	}
	zero_pages_cached(blk, t, 1);
}

static double read_window(const char *blk, size_t n, size_t t)
{
	size_t bytes = n << ZP_PAGE_SHIFT, c = (t << ZP_PAGE_SHIFT) + ZP_PAGE_SIZE / 2;
	size_t lo = c > (32u << 10) ? c - (32u << 10) : 0, hi = lo + (64u << 10);
	volatile uint64_t sink = 0;
	uint64_t acc = 0;
	double t0;

	if (hi > bytes) {
		hi = bytes;
		lo = bytes > (64u << 10) ? bytes - (64u << 10) : 0;
	}
	t0 = now_ns();
	for (size_t i = lo; i < hi; i += 64)
		acc += *(const volatile uint64_t *)(blk + i);
	sink = acc;
	(void)sink;
	return now_ns() - t0;
}

static void clear_one_order(unsigned order, unsigned samples, uint64_t *rng)
{
	size_t n = (size_t)1 << order, bsz = n << ZP_PAGE_SHIFT, nblk = RING_BYTES / bsz;
	struct zp_config cfg = {.size = RING_BYTES, .max_order = order < 10 ? 10 : order};
	struct zp_arena *a = zp_arena_create(&cfg);
	static double tc[NR_ROWS][4096], tr[NR_ROWS][4096];
	char **blk = calloc(nblk, sizeof(*blk));
	/* walk the ring with a large odd stride (nblk is a power of two, so
	 * every block is visited once per lap) so that blocks cleared one after
	 * the other are far apart and no row gains from the prefetcher */
	size_t next = 0, stride = ((nblk * 5) / 8) | 1;

	if (!a || !blk || samples > 4096) {
		fprintf(stderr, "zpage-bench: clear: setup failed\n");
		exit(1);
	}
	for (size_t i = 0; i < nblk; i++) {
		blk[i] = zp_alloc_pages(a, 0, order, ZP_USER_ADDR_NONE);
		if (!blk[i]) {
			fprintf(stderr, "zpage-bench: clear: allocation failed\n");
			exit(1);
		}
		memset(blk[i], 0x5a, bsz); /* resident and dirty */
	}
	for (unsigned s = 0; s < samples; s++) {
		*rng ^= *rng << 13, *rng ^= *rng >> 7, *rng ^= *rng << 17;
		size_t t = (size_t)(*rng % n);
		uintptr_t ua = (uintptr_t)0x7f0000000000ull + (t << ZP_PAGE_SHIFT) + 64;

		for (int r = 0; r < NR_ROWS; r++) {
			char *b = blk[next];
			size_t pfn = (size_t)(b - a->base) >> ZP_PAGE_SHIFT;
			double t0 = now_ns();

			next = (next + stride) % nblk;
			switch (r) {
			case R_ZP_UA:
				clear_dirty_pages(a, pfn, order, ua);
				break;
			case R_ZP_NONE:
				clear_dirty_pages(a, pfn, order, ZP_USER_ADDR_NONE);
				break;
			case R_LINUX:
				linux_current(b, n, t);
				break;
			case R_LINUX2017:
				linux_2017(b, n, t);
				break;
			case R_CACHED:
				zero_cached(b, bsz);
				break;
			case R_NT:
				zero_nt(b, bsz);
				break;
			}
			tc[r][s] = now_ns() - t0;
			tr[r][s] = read_window(b, n, t);
			if (b[(t << ZP_PAGE_SHIFT) + 64] || b[0] || b[bsz - 1]) {
				fprintf(stderr, "zpage-bench: clear: row '%s' left data behind\n", row_names[r]);
				exit(1);
			}
		}
	}

	/* Ratios are medians of per-sample ratios: each sample's rows ran
	 * back to back on the same target, so bandwidth drift cancels. */
	static double ratio[4][4096];

	printf("order %u (%zu KiB): %u cold dirty blocks per row; medians [p10-p90]; x = median of paired ratios\n",
	       order, bsz >> 10, samples);
	printf("  %-30s %22s %7s %6s %7s %22s %6s\n", "row", "clear us", "GB/s", "x NT", "x linux",
	       "read 64K after, us", "x NT");
	for (int r = 0; r < NR_ROWS; r++) {
		double c = pct(tc[r], samples, 50), rd;
		char cs[40], rs[40];

		for (unsigned k = 0; k < samples; k++) {
			ratio[0][k] = tc[r][k] / tc[R_NT][k];
			ratio[1][k] = tc[r][k] / tc[R_LINUX][k];
			ratio[2][k] = tr[r][k] / tr[R_NT][k];
		}
		snprintf(cs, sizeof(cs), "%.2f [%.2f-%.2f]", c / 1e3, pct(tc[r], samples, 10) / 1e3,
			 pct(tc[r], samples, 90) / 1e3);
		rd = pct(tr[r], samples, 50);
		snprintf(rs, sizeof(rs), "%.2f [%.2f-%.2f]", rd / 1e3, pct(tr[r], samples, 10) / 1e3,
			 pct(tr[r], samples, 90) / 1e3);
		printf("  %-30s %22s %7.1f %6.2f %7.2f %22s %6.2f\n", row_names[r], cs, (double)bsz / c,
		       pct(ratio[0], samples, 50), pct(ratio[1], samples, 50), rs, pct(ratio[2], samples, 50));
	}
	printf("\n");
	free(blk);
	zp_arena_destroy(a);
}

static void bench_clear(void)
{
	static const unsigned orders[] = {0, 4, 9, 10};
	static const unsigned samples[] = {4000, 4000, 1000, 600};
	uint64_t rng = 0x2545f4914f6cdd1dull;

	printf("clearing engine: cached = %s, non-temporal = %s\n\n", zero_cached_name(), zero_nt_name());
	for (int i = 0; i < 4; i++)
		clear_one_order(orders[i], samples[i], &rng);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: zpage-bench [quick|clear|all]\n"
		   "  quick   zeroing order-9 allocation cost from fresh, zeroed and dirty memory;\n"
		   "          order-0 alloc+free throughput with 1 and 2 threads (the default)\n"
		   "  clear   the clearing engine against Linux's orders and plain cached and\n"
		   "          non-temporal clears, orders 0, 4, 9, 10, from dirty cold memory\n"
		   "  all     quick, then clear\n");
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "quick";

	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
		usage(stdout);
		return 0;
	}
	if (argc > 2 || (strcmp(cmd, "quick") && strcmp(cmd, "clear") && strcmp(cmd, "all"))) {
		fprintf(stderr, "zpage-bench: unknown argument '%s'\n", argc > 2 ? argv[2] : cmd);
		usage(stderr);
		return 2;
	}
	if (strcmp(cmd, "clear")) {
		bench_order9();
		bench_order0();
	}
	if (strcmp(cmd, "quick"))
		bench_clear();
	return 0;
}
