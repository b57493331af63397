/* SPDX-License-Identifier: MIT */
/*
 * pairs: the everyday path.  Allocate 8 blocks of one order (0..3), free
 * the 8 in the order they came, again and again: million alloc+free pairs
 * per second at 1 thread and at --threads threads, zpage
 * (zp_alloc_pages(a, 0, order, ZP_USER_ADDR_NONE) / zp_free_pages) against
 * each peer's page-aligned allocation of the same size (peers.c: glibc
 * aligned_alloc / free, jemalloc mallocx(MALLOCX_ALIGN(4096)) / dallocx,
 * mimalloc mi_malloc_aligned / mi_free, tcmalloc tc_memalign / tc_free).
 * Nothing is written to the memory: every row pays for the allocator's
 * path alone, and every row is called the same way, through a struct
 * peer's two function pointers (zpage's are wrappers here).
 *
 * A cell is one allocator, order and thread count.  Its threads run the
 * loop for a fixed time, each counting its pairs over its own clock; the
 * cell's rate is the sum of its threads' rates.  A round measures every
 * cell once, in an order rotated from round to round, so drift on a
 * shared machine hits all cells alike; the ratios (to mimalloc's cell of
 * the same order and threads; N threads to 1 thread) are taken within each
 * round.  The same threads, made once, run every cell (a 1-thread cell
 * runs on the first of them), so thread caches stay warm as in a program.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"

#define SC	"pairs"
#define NORDERS 4	       /* orders 0..3 */
#define BATCH	8	       /* allocations, then as many frees */
#define NALLOC	(NR_PEERS + 1) /* zpage, then the peers */
#define A_MI	(PEER_MIMALLOC + 1)

static struct zp_arena *arena;

static void *zpage_alloc(size_t size)
{
	return zp_alloc_pages(arena, 0, (unsigned)__builtin_ctzl(size >> ZP_PAGE_SHIFT), ZP_USER_ADDR_NONE);
}

static void zpage_release(void *p, size_t size)
{
	zp_free_pages(arena, p, (unsigned)__builtin_ctzl(size >> ZP_PAGE_SHIFT));
}

static const struct peer zpage = {"zpage", true, NULL, NULL, zpage_alloc, zpage_release};

static const struct peer *allocator(int k)
{
	return k ? &peers[k - 1] : &zpage;
}

struct cell {
	int alloc;	/* 0: zpage, k: peers[k - 1] */
	unsigned order; /* 0..NORDERS-1 */
	unsigned nt;	/* threads: 1 or opt_threads */
};

/* The threads and what they run next; cell NULL makes them exit. */
static struct {
	pthread_barrier_t start, done;
	const struct cell *cell;
	double seconds;
	double *rate; /* M pairs/s of each thread in the cell just run */
} pool;

/* The loop, for @seconds: M pairs/s on this thread's clock, or -1 when an
 * allocation failed. */
static double loop(const struct peer *pe, size_t size, double seconds)
{
	void *p[BATCH];
	unsigned long pairs = 0;
	bool failed = false;
	double t0 = now_ns(), end = t0 + seconds * 1e9, t;

	do {
		for (int k = 0; k < 32; k++) {
			for (int i = 0; i < BATCH; i++)
				p[i] = pe->alloc(size);
			for (int i = 0; i < BATCH; i++) {
				if (p[i])
					pe->release(p[i], size);
				else
					failed = true;
			}
		}
		pairs += 32 * BATCH;
	} while ((t = now_ns()) < end);
	return failed ? -1 : pairs / ((t - t0) / 1e3);
}

static void *worker(void *arg)
{
	unsigned me = (unsigned)(uintptr_t)arg;

	for (;;) {
		const struct cell *c;

		pthread_barrier_wait(&pool.start);
		c = pool.cell;
		if (!c)
			return NULL;
		if (me < c->nt)
			pool.rate[me] = loop(allocator(c->alloc), ZP_PAGE_SIZE << c->order, pool.seconds);
		pthread_barrier_wait(&pool.done);
	}
}

/* Run cell @c (NULL: the threads exit) for @seconds; its M pairs/s. */
static double run_cell(const struct cell *c, double seconds)
{
	double sum = 0;

	pool.cell = c;
	pool.seconds = seconds;
	pthread_barrier_wait(&pool.start);
	if (!c)
		return 0;
	pthread_barrier_wait(&pool.done);
	for (unsigned i = 0; i < c->nt; i++) {
		if (pool.rate[i] < 0)
			die("pairs: %s: an allocation of order %u failed", allocator(c->alloc)->name, c->order);
		sum += pool.rate[i];
	}
	return sum;
}

/* The cell of allocator @k, order @o, thread count index @t in @cells. */
static size_t cell_index(int k, unsigned o, unsigned t)
{
	return ((size_t)t * NORDERS + o) * NALLOC + (size_t)k;
}

/* The row of allocator @k, order @o: rates[cell][round]; the ratios are
 * taken within each round. */
static void record(int k, unsigned o, double *const *rates, const unsigned *counts, unsigned ncounts, int rounds)
{
	char *row = xasprintf("%s, order %u (%zu KiB)", allocator(k)->name, o, (ZP_PAGE_SIZE << o) >> 10);
	double *x = xmalloc((size_t)rounds * sizeof(double));

	for (unsigned t = 0; t < ncounts; t++) {
		const double *r = rates[cell_index(k, o, t)], *m = rates[cell_index(A_MI, o, t)];
		const char *s = counts[t] > 1 ? "s" : "";
		char *metric = xasprintf("%u thread%s", counts[t], s);

		result(SC, row, metric, "M pairs/s", r, (size_t)rounds);
		free(metric);
		if (!allocator(A_MI)->available)
			continue;
		for (int i = 0; i < rounds; i++)
			x[i] = r[i] / m[i];
		metric = xasprintf("vs mimalloc, %u thread%s", counts[t], s);
		result(SC, row, metric, "x", x, (size_t)rounds);
		free(metric);
	}
	if (ncounts > 1) {
		char *metric = xasprintf("%u threads / 1 thread", counts[1]);

		for (int i = 0; i < rounds; i++)
			x[i] = rates[cell_index(k, o, 1)][i] / rates[cell_index(k, o, 0)][i];
		result(SC, row, metric, "x", x, (size_t)rounds);
		free(metric);
	}
	free(row);
	free(x);
}

void sc_pairs(void)
{
	unsigned counts[2] = {1, opt_threads}, ncounts = opt_threads > 1 ? 2 : 1;
	size_t ncells = (size_t)ncounts * NORDERS * NALLOC, n = 0, nact = 0;
	int rounds = (int)(9 * opt_scale + 0.5);
	double seconds = 0.02 * opt_scale;
	struct cell *cells = xmalloc(ncells * sizeof(*cells));
	double **rates = xmalloc(ncells * sizeof(*rates));
	pthread_t *t = xmalloc(opt_threads * sizeof(*t));
	size_t *act = xmalloc(ncells * sizeof(*act)); /* the cells of available allocators */
	struct rotation rot;

	rounds = rounds < 3 ? 3 : rounds > 99 ? 99 : rounds;
	if (seconds < 0.002)
		seconds = 0.002;
	arena = arena_or_die(NULL);
	for (unsigned c = 0; c < ncounts; c++)
		for (unsigned o = 0; o < NORDERS; o++)
			for (int k = 0; k < NALLOC; k++) {
				cells[n] = (struct cell){k, o, counts[c]};
				rates[n++] = xmalloc((size_t)rounds * sizeof(double));
			}
	pool.rate = xmalloc(opt_threads * sizeof(double));
	pthread_barrier_init(&pool.start, NULL, opt_threads + 1);
	pthread_barrier_init(&pool.done, NULL, opt_threads + 1);
	for (unsigned i = 0; i < opt_threads; i++)
		pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i);
	for (size_t c = 0; c < ncells; c++)
		if (allocator(cells[c].alloc)->available)
			act[nact++] = c;
	/* round -1 warms every cell up (thread caches, the arena) untimed */
	for (size_t i = 0; i < nact; i++)
		run_cell(&cells[act[i]], seconds / 2);
	rotation_init(&rot, SC, "round", nact, (size_t)rounds);
	rot.items = "cells (rows x thread counts)";
	for (int r = 0; r < rounds; r++) {
		const size_t *order = rotation_next(&rot);

		progress("pairs: round %d/%d", r + 1, rounds);
		for (size_t i = 0; i < nact; i++)
			rates[act[order[i]]][r] = run_cell(&cells[act[order[i]]], seconds);
	}
	run_cell(NULL, 0);
	for (unsigned i = 0; i < opt_threads; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&pool.start);
	pthread_barrier_destroy(&pool.done);
	arena_done(arena, SC, "zpage");
	for (unsigned o = 0; o < NORDERS; o++)
		for (int k = 0; k < NALLOC; k++)
			if (allocator(k)->available)
				record(k, o, rates, counts, ncounts, rounds);
	for (int k = 1; k < NALLOC; k++)
		if (!allocator(k)->available)
			note(SC, "%s: not installed", allocator(k)->name);
	note(SC,
	     "per loop: %d allocations of one order, then %d frees in the same order; nothing written to the "
	     "memory; each cell %.0f ms a round, %d rounds",
	     BATCH, BATCH, seconds * 1e3, rounds);
	note(SC, "zpage: zp_alloc_pages(a, 0, order, ZP_USER_ADDR_NONE) / zp_free_pages; glibc: aligned_alloc(4096, "
		 "size) / free; jemalloc: mallocx(size, MALLOCX_ALIGN(4096)) / dallocx; mimalloc: "
		 "mi_malloc_aligned(size, 4096) / mi_free; tcmalloc: tc_memalign(4096, size) / tc_free");
	if (allocator(A_MI)->available)
		note(SC, "vs mimalloc: this row / mimalloc's row of the same order and threads, round by round");
	rotation_done(&rot);
	for (size_t i = 0; i < ncells; i++)
		free(rates[i]);
	free(act);
	free(rates);
	free(cells);
	free(pool.rate);
	free(t);
}
