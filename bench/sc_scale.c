/* SPDX-License-Identifier: MIT */
/*
 * scale: what an arena costs as it grows.  For arenas of 1 GiB, 64 GiB and
 * 1 TiB (reserved MAP_NORESERVE by the library, so they fit in address
 * space whatever the memory) and max_order 10, 14 and 20:
 *   create         the time zp_arena_create() takes
 *   RSS at create  VmRSS after it minus before it
 *   first pair     the first order-4 alloc+free on the new, idle arena: it
 *                  pays the carve of the first block and the first faults
 *                  of the metadata it touches
 *   RSS after it   VmRSS after that pair minus before the creation
 *   steady pair    later order-4 alloc+free pairs on the same arena, each
 *                  timed (clock_gettime, ~20 ns, included): the thread's
 *                  cache serves them (orders 0..8)
 *   buddy pair     the same with the caches emptied and turned off (a test
 *                  control): the buddy lists' own cost.  Each pair splits
 *                  an order-9 block down to order 4 and merges it back up
 *                  to order 9, where merging waits (buddy.c): 5 levels at
 *                  every max_order here (eager merging crossed 6 levels at
 *                  max_order 10 and 16 at 20)
 * The first four are medians over a few arenas, each destroyed before the
 * next is made; the steady pairs are those of the last arena.  Nothing is
 * written to the blocks.  An arena the machine cannot reserve is a note,
 * not a failure.  The cells are kept cheap: how the costs grow with the
 * arena and its largest block is the point, not their absolute size.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "internal.h" /* zp_test_set_pcp, zp_test_drain_pcp */

#define SC    "scale"
#define ORDER 4

/* The steady pairs of @a: at most @max, for at most @seconds, at least 5. */
static size_t steady_pairs(struct zp_arena *a, double *us, size_t max, double seconds)
{
	double end = now_ns() + seconds * 1e9;
	size_t n = 0;

	while (n < max && (n < 5 || now_ns() < end)) {
		double t0 = now_ns();
		void *p = zp_alloc_pages(a, 0, ORDER, ZP_USER_ADDR_NONE);

		if (!p)
			die("scale: an order-%d allocation failed", ORDER);
		zp_free_pages(a, p, ORDER);
		us[n++] = (now_ns() - t0) / 1e3;
	}
	return n;
}

enum { CREATE, RSS_CREATE, FIRST, RSS_FIRST, NM };

/* A row: an arena size and max_order, and its figures. */
struct scale_row {
	char *name;
	struct zp_config cfg;
	bool failed; /* the machine cannot make one: a note, no figures */
	double v[NM][8];
	double *steady, *buddy;
	size_t nsteady, nbuddy;
};

/* Arena @c of row @x: create it, time the first pair, and on the last one
 * (@last) the steady pairs; then destroy it. */
static void one_arena(struct scale_row *x, int c, bool last)
{
	size_t max = (size_t)(20000 * opt_scale) + 20;
	long rss0 = rss_kib();
	double t0 = now_ns();
	struct zp_arena *a = zp_arena_create(&x->cfg);
	double t1 = now_ns();
	long rss1 = rss_kib();
	double t2 = now_ns();
	void *p;

	if (!a) {
		note(SC, "%s: cannot be created here: %s", x->name, strerror(errno));
		x->failed = true;
		return;
	}
	p = zp_alloc_pages(a, 0, ORDER, ZP_USER_ADDR_NONE);
	if (!p)
		die("scale: %s: the first order-%d allocation failed", x->name, ORDER);
	zp_free_pages(a, p, ORDER);
	x->v[FIRST][c] = (now_ns() - t2) / 1e3;
	x->v[RSS_FIRST][c] = (double)(rss_kib() - rss0);
	x->v[CREATE][c] = (t1 - t0) / 1e3;
	x->v[RSS_CREATE][c] = (double)(rss1 - rss0);
	if (last) {
		x->steady = xmalloc(max * sizeof(double));
		x->nsteady = steady_pairs(a, x->steady, max, 0.1 * opt_scale);
		zp_test_drain_pcp(a);
		zp_test_set_pcp(a, false);
		x->buddy = xmalloc(max * sizeof(double));
		x->nbuddy = steady_pairs(a, x->buddy, max, 0.1 * opt_scale);
	}
	arena_done(a, SC, x->name);
}

static void record(struct scale_row *x, int ncreate)
{
	static const char *const metric[NM] = {"create", "RSS at create", "first pair", "RSS after it"};
	static const char *const unit[NM] = {"us", "KiB", "us", "KiB"};

	if (!x->failed) {
		/* the steady pair first: it is the chart's (how the cost grows) */
		result(SC, x->name, "steady pair", "us", x->steady, x->nsteady);
		result(SC, x->name, "buddy pair", "us", x->buddy, x->nbuddy);
		for (int m = 0; m < NM; m++)
			result(SC, x->name, metric[m], unit[m], x->v[m], (size_t)ncreate);
	}
	free(x->steady);
	free(x->buddy);
	free(x->name);
}

/* The arenas are made round by round, one of each row a round, the rows
 * in an order rotating from round to round. */
void sc_scale(void)
{
	static const struct {
		const char *name;
		size_t bytes;
	} sizes[] = {{"1 GiB", (size_t)1 << 30}, {"64 GiB", (size_t)64 << 30}, {"1 TiB", (size_t)1 << 40}};
	static const unsigned orders[] = {10, 14, 20};
	enum { NSIZES = sizeof(sizes) / sizeof(sizes[0]), NORDERS = sizeof(orders) / sizeof(orders[0]) };
	int ncreate = opt_scale < 1 ? 3 : 5;
	struct scale_row x[NSIZES * NORDERS];
	struct rotation rot;

	for (size_t s = 0; s < NSIZES; s++)
		for (size_t o = 0; o < NORDERS; o++)
			x[s * NORDERS + o] = (struct scale_row){
				.name = xasprintf("zpage, %s, max_order %u", sizes[s].name, orders[o]),
				.cfg = {.size = sizes[s].bytes, .max_order = orders[o]}};
	rotation_init(&rot, SC, "round", NSIZES * NORDERS, (size_t)ncreate);
	for (int c = 0; c < ncreate; c++) {
		const size_t *order = rotation_next(&rot);

		for (size_t j = 0; j < NSIZES * NORDERS; j++) {
			struct scale_row *r = &x[order[j]];

			progress("scale: round %d/%d: %s", c + 1, ncreate, r->name);
			if (!r->failed)
				one_arena(r, c, c == ncreate - 1);
		}
	}
	for (size_t j = 0; j < NSIZES * NORDERS; j++)
		record(&x[j], ncreate);
	reference(SC, "zpage, 1 GiB, max_order 10");
	note(SC,
	     "create, RSS and the first order-%d pair: medians over %d new arenas (each destroyed before the "
	     "next); steady pair: the later pairs on the last one; nothing written to the blocks; RSS in KiB "
	     "from VmRSS, relative to before the creation",
	     ORDER, ncreate);
	rotation_done(&rot);
}
