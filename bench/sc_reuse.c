/* SPDX-License-Identifier: MIT */
/*
 * reuse: a zeroed block taken, written whole and given back, again and
 * again, as a program does with a temporary buffer (numpy's temporaries,
 * a sort buffer, a runtime's nursery): the block it gets is the one it
 * gave back a moment ago.  Orders 6, 9 and 10 (256 KiB, 2 MiB, 4 MiB:
 * blocks zpage clears with non-temporal stores when it takes them cold).
 * Rows: zpage (zp_alloc_pages(a, ZP_GFP_ZERO, order, ZP_USER_ADDR_NONE),
 * then zp_free_pages); zpage with warmth off (its own arena, every block of
 * 2 and 4 MiB cleared as a cold one: the rule before warmth, clear.c; a
 * 256 KiB block comes from the thread's cache and is hot in both); each
 * peer's zero-filled allocation (peers.c: calloc, or the peer's own, of
 * the same size) and free.  Every row writes every byte of what it gets
 * (memset), so each pays for its memory as a program that uses it would.
 * A round runs each row BURST times back to back, rows in an order
 * rotating from round to round; the first of a burst is not recorded (it
 * follows the previous row's traffic, not its own block).  Columns: the
 * iteration ("zeroing alloc + writes", the one charts draw), the zeroing
 * allocation, the writes after it: medians over the samples, microseconds.
 */
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "internal.h"

#define SC_FMT "reuse, order %u (%zu KiB)"
#define BURST  8
#define NROWS  (NR_PEERS + 2) /* zpage, zpage warmth off, the peers */

static const unsigned orders[] = {6, 9, 10};

struct row {
	const char *name;
	struct zp_arena *a; /* zpage's rows */
	const struct peer *pe;
	double *t_alloc, *t_write, *t_total;
	size_t n;
};

static void one(struct row *x, unsigned order, bool keep)
{
	size_t len = ZP_PAGE_SIZE << order;
	double t0 = now_ns(), t1, t2;
	char *p = x->a ? zp_alloc_pages(x->a, ZP_GFP_ZERO, order, ZP_USER_ADDR_NONE) : x->pe->zalloc(len);

	t1 = now_ns();
	if (!p)
		die("reuse: %s: a block of order %u could not be had", x->name, order);
	memset(p, 1, len);
	t2 = now_ns();
	if (x->a) {
		if (zp_free_pages(x->a, p, order))
			die("reuse: zp_free_pages refused a block it gave");
	} else {
		x->pe->release(p, len);
	}
	if (keep) {
		x->t_alloc[x->n] = (t1 - t0) / 1e3;
		x->t_write[x->n] = (t2 - t1) / 1e3;
		x->t_total[x->n] = (t2 - t0) / 1e3;
		x->n++;
	}
}

static void one_order(unsigned order, struct zp_arena *warm, struct zp_arena *cold)
{
	size_t rounds = (size_t)(40 * opt_scale) < 3 ? 3 : (size_t)(40 * opt_scale), nrows = 0;
	size_t kib = (ZP_PAGE_SIZE << order) >> 10;
	char *sc = xasprintf(SC_FMT, order, kib);
	struct row x[NROWS];
	struct rotation rot;

	x[nrows++] = (struct row){.name = "zpage", .a = warm};
	x[nrows++] = (struct row){.name = "zpage, warmth off", .a = cold};
	for (int i = 0; i < NR_PEERS; i++)
		if (peers[i].available)
			x[nrows++] = (struct row){.name = peers[i].name, .pe = &peers[i]};
	for (size_t k = 0; k < nrows; k++) {
		x[k].t_alloc = xmalloc(rounds * BURST * sizeof(double));
		x[k].t_write = xmalloc(rounds * BURST * sizeof(double));
		x[k].t_total = xmalloc(rounds * BURST * sizeof(double));
		x[k].n = 0;
	}
	rotation_init(&rot, sc, "round", nrows, rounds);
	for (size_t r = 0; r < rounds; r++) {
		const size_t *ord = rotation_next(&rot);

		progress("%s: round %zu/%zu", sc, r + 1, rounds);
		for (size_t k = 0; k < nrows; k++)
			for (int b = 0; b < BURST; b++)
				one(&x[ord[k]], order, b > 0);
	}
	for (size_t k = 0; k < nrows; k++) {
		/* the whole iteration first: the column charts draw */
		result(sc, x[k].name, "zeroing alloc + writes", "us", x[k].t_total, x[k].n);
		result(sc, x[k].name, "zeroing alloc", "us", x[k].t_alloc, x[k].n);
		result(sc, x[k].name, "writes after", "us", x[k].t_write, x[k].n);
		free(x[k].t_alloc);
		free(x[k].t_write);
		free(x[k].t_total);
	}
	reference(sc, "zpage, warmth off");
	note(sc, "a zeroed block taken, every byte written (memset), given back; %d times a row a round, the first "
		 "not recorded; %zu rounds; peers: their zero-filled allocation of the same size; zpage's arena asks "
		 "for transparent huge pages (MADV_HUGEPAGE), the peers' heaps get what their own mappings ask: "
		 "compare zpage with the peers knowing that, zpage with zpage, warmth off as is",
	     BURST, rounds);
	rotation_done(&rot);
	free(sc);
}

void sc_reuse(void)
{
	struct zp_arena *warm = arena_or_die(NULL), *cold = arena_or_die(NULL);

	zp_test_set_warm_ns(cold, 0);
	for (size_t i = 0; i < sizeof(orders) / sizeof(orders[0]); i++)
		one_order(orders[i], warm, cold);
	arena_done(warm, "reuse", "zpage");
	arena_done(cold, "reuse", "zpage, warmth off");
}
