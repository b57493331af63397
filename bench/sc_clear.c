/* SPDX-License-Identifier: MIT */
/*
 * clear: the clearing engine against the alternatives.
 *
 * For orders 0, 4, 9 and 10: blocks of a 256 MiB ring (8x the L3), each
 * prefaulted and dirty, are cleared in turn so every block is cache-cold
 * when its clear starts.  Rows are interleaved per sample (same block size,
 * same random target, the first row rotating from sample to sample) so
 * noise on a shared machine and the position in a sample hit all alike; the
 * ring is walked with a large odd stride so that no row gains from the
 * prefetcher.  After each clear, the 64 KiB around the target page (clipped
 * to the block) is read, one load per cache line: what the caller touches
 * first.  Rows:
 *   zpage engine, with user_addr and without (clear_dirty_pages())
 *   Linux's current order: right of target+2, left of target-2, then
 *     target +-2, each one ascending contiguous cached clear
 *   Linux's 2017 order (c79b57e462b5): far pages first, one by one, then
 *     converging on the target from both sides, target last
 *   one cached clear of the whole block; one non-temporal clear (the limit)
 * For blocks of 2 MiB and more, "of the limit": the row's bandwidth over
 * the non-temporal clear bandwidth calib.c measured at the start.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "internal.h"

#define RING_BYTES ((size_t)256 << 20)
/* the smallest block whose clear is long enough to stream: the "of the
 * limit" column (bandwidth / the NT limit of calib.c) is given from it on */
#define BW_MIN ((size_t)2 << 20)

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

/* Record a metric from per-sample values: ns[k] / den[k] (a paired ratio),
 * or ns[k] in microseconds when @den is NULL. */
static void per_sample(const char *sc, const char *row, const char *metric, const char *unit, const double *ns,
		       const double *den, unsigned n)
{
	double *v = xmalloc(n * sizeof(double));

	for (unsigned k = 0; k < n; k++)
		v[k] = den ? ns[k] / den[k] : ns[k] / 1e3;
	result(sc, row, metric, unit, v, n);
	free(v);
}

static void clear_one_order(unsigned order, unsigned samples, uint64_t *rng)
{
	size_t n = (size_t)1 << order, bsz = n << ZP_PAGE_SHIFT, nblk = RING_BYTES / bsz;
	struct zp_config cfg = {.size = RING_BYTES, .max_order = order < 10 ? 10 : order};
	struct zp_arena *a = zp_arena_create(&cfg);
	double *tc[NR_ROWS], *tr[NR_ROWS]; /* clear and read times, per row and sample */
	char **blk = calloc(nblk, sizeof(*blk));
	/* walk the ring with a large odd stride (nblk is a power of two, so
	 * every block is visited once per lap) so that blocks cleared one after
	 * the other are far apart and no row gains from the prefetcher */
	size_t next = 0, stride = ((nblk * 5) / 8) | 1;
	struct rotation rot;
	char sc[48];

	if (!a || !blk) {
		die("clear: setup failed");
	}
	for (int r = 0; r < NR_ROWS; r++) {
		tc[r] = xmalloc(samples * sizeof(double));
		tr[r] = xmalloc(samples * sizeof(double));
	}
	for (size_t i = 0; i < nblk; i++) {
		blk[i] = zp_alloc_pages(a, 0, order, ZP_USER_ADDR_NONE);
		if (!blk[i]) {
			die("clear: allocation failed");
		}
		memset(blk[i], 0x5a, bsz); /* resident and dirty */
	}
	snprintf(sc, sizeof(sc), "clear order %u (%zu KiB)", order, bsz >> 10);
	rotation_init(&rot, sc, "sample", NR_ROWS, samples);
	for (unsigned s = 0; s < samples; s++) {
		*rng ^= *rng << 13, *rng ^= *rng >> 7, *rng ^= *rng << 17;
		size_t t = (size_t)(*rng % n);
		uintptr_t ua = (uintptr_t)0x7f0000000000ull + (t << ZP_PAGE_SHIFT) + 64;
		/* rotate which row goes first: a fixed order biased the first
		 * row by a few percent (seen: the engine row at 1.00-1.02x
		 * Linux's order in first place, 0.95x in second) */
		const size_t *rows = rotation_next(&rot);

		for (int k = 0; k < NR_ROWS; k++) {
			int r = (int)rows[k];
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
			tr[r][s] = read_window(b, n << ZP_PAGE_SHIFT, t);
			if (b[(t << ZP_PAGE_SHIFT) + 64] || b[0] || b[bsz - 1]) {
				die("clear: row '%s' left data behind", row_names[r]);
			}
		}
	}

	/* Ratios are per-sample: each sample's rows ran back to back on the
	 * same target, so this machine's bandwidth drift cancels. */
	for (int r = 0; r < NR_ROWS; r++) {
		per_sample(sc, row_names[r], "clear", "us", tc[r], NULL, samples);
		if (bsz >= BW_MIN) {
			double *v = xmalloc(samples * sizeof(double));

			for (unsigned k = 0; k < samples; k++)
				v[k] = (double)bsz / tc[r][k] / calib.nt;
			result(sc, row_names[r], "of the limit", "x", v, samples);
			free(v);
		}
		per_sample(sc, row_names[r], "clear x NT", "paired", tc[r], tc[R_NT], samples);
		per_sample(sc, row_names[r], "clear x linux", "paired", tc[r], tc[R_LINUX], samples);
		per_sample(sc, row_names[r], "read 64K after", "us", tr[r], NULL, samples);
		per_sample(sc, row_names[r], "read x NT", "paired", tr[r], tr[R_NT], samples);
	}
	for (int r = 0; r < NR_ROWS; r++) {
		free(tc[r]);
		free(tr[r]);
	}
	note(sc,
	     "%u cache-cold dirty blocks per row from a 256 MiB ring; 'paired' = median of per-sample ratios; "
	     "cached = %s, non-temporal = %s",
	     samples, zero_cached_name(), zero_nt_name());
	if (bsz >= BW_MIN)
		note(sc,
		     "of the limit: the row's clear bandwidth / %.1f GB/s, this machine's non-temporal clear of cold "
		     "memory measured at the start (a median in 2 MiB pieces, and the machine drifts: a row's "
		     "p90, or a block cleared in one call, can go past 1; 'clear x NT' is the same-sample ratio)",
		     calib.nt);
	else
		note(sc, "no 'of the limit' column: a clear this small is bound by the latency of its first misses, "
			 "not by bandwidth");
	rotation_done(&rot);
	free(blk);
	arena_done(a, sc, "zpage engine rows");
}

void sc_clear(void)
{
	static const unsigned orders[] = {0, 4, 9, 10};
	static const unsigned samples[] = {4000, 4000, 1000, 600};
	uint64_t rng = 0x2545f4914f6cdd1dull;

	for (int i = 0; i < 4; i++) {
		unsigned n = (unsigned)(samples[i] * opt_scale);

		progress("clear: order %u", orders[i]);
		clear_one_order(orders[i], n < 8 ? 8 : n, &rng);
	}
}
