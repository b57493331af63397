/* SPDX-License-Identifier: MIT */
/*
 * anon-w-seq / anon-w-rand, after vm-scalability's cases of those names:
 * each of N threads takes a region in 2 MiB zeroed blocks and writes every
 * 8-byte word of it, pages in order (seq) or in a random order (rand), then
 * gives the blocks back; total GB/s over the round, median over rounds.
 * Round 1 of zpage takes fresh memory; later rounds reuse freed (dirty)
 * memory, which zpage clears with the target page (the first one written)
 * last.  The kernel row maps and unmaps the region each round (THP asked).
 * The rows' threads all start first; each round then runs the rows one
 * after the other, in an order rotating from round to round.  "of the
 * limit": GB/s over the rate at which as many threads clear resident,
 * cache-cold memory 2 MiB at a time with cached stores (calib.c): about
 * what the workload's own writes could reach with no allocator, no zeroing
 * and no faults.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "bench.h"

#define BLK	      ((size_t)2 << 20)
#define PAGES_PER_BLK (BLK / ZP_PAGE_SIZE)

enum kind { K_ZPAGE, K_KERNEL, K_PEER };

struct worker {
	enum kind kind;
	const struct peer *peer;
	struct zp_arena *a;
	size_t nblk;
	bool random;
	uint64_t rng;
	pthread_barrier_t *bar;
	int rounds;
	int failed;
	double t0, t1; /* this round's start and end, on this thread */
};

static void write_block(char *b, bool random, uint64_t *rng, uint64_t v)
{
	size_t order[PAGES_PER_BLK];

	for (size_t i = 0; i < PAGES_PER_BLK; i++)
		order[i] = i;
	if (random)
		for (size_t i = PAGES_PER_BLK - 1; i > 0; i--) {
			size_t j = rnd64(rng) % (i + 1), t = order[i];

			order[i] = order[j];
			order[j] = t;
		}
	for (size_t i = 0; i < PAGES_PER_BLK; i++) {
		uint64_t *w = (uint64_t *)(b + (order[i] << ZP_PAGE_SHIFT));

		for (size_t k = 0; k < ZP_PAGE_SIZE / 8; k++)
			w[k] = v + k;
	}
}

static void *run(void *arg)
{
	struct worker *w = arg;
	char **p = xmalloc(w->nblk * sizeof(*p));

	for (int r = 0; r < w->rounds; r++) {
		char *m = NULL;

		pthread_barrier_wait(w->bar);
		w->t0 = now_ns();
		if (w->kind == K_KERNEL) {
			m = mmap(NULL, w->nblk * BLK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (m == MAP_FAILED) {
				w->failed = 1;
				m = NULL;
			} else {
				madvise(m, w->nblk * BLK, MADV_HUGEPAGE);
			}
		}
		for (size_t i = 0; i < w->nblk && !w->failed; i++) {
			size_t first = w->random ? rnd64(&w->rng) % PAGES_PER_BLK : 0;

			if (w->kind == K_ZPAGE)
				p[i] = zp_alloc_pages(w->a, ZP_GFP_ZERO, 9, (uintptr_t)first << ZP_PAGE_SHIFT);
			else if (w->kind == K_KERNEL)
				p[i] = m + i * BLK;
			else
				p[i] = w->peer->zalloc(BLK);
			if (!p[i]) {
				w->failed = 1;
				break;
			}
			write_block(p[i], w->random, &w->rng, i);
		}
		for (size_t i = 0; i < w->nblk && !w->failed; i++) {
			if (w->kind == K_ZPAGE)
				zp_free_pages(w->a, p[i], 9);
			else if (w->kind == K_PEER)
				w->peer->release(p[i], BLK);
		}
		if (m)
			munmap(m, w->nblk * BLK);
		w->t1 = now_ns();
		pthread_barrier_wait(w->bar);
	}
	free(p);
	return NULL;
}

/* A row: its threads (they live through every round), and its figures. */
struct anon_row {
	char *name;
	struct zp_arena *a;
	struct worker *w;
	pthread_t *t;
	pthread_barrier_t bar;
	size_t nblk;
	double *gbs; /* per round */
};

static void row_start(struct anon_row *x, enum kind kind, const struct peer *pe, bool random, int rounds)
{
	unsigned nt = opt_threads;
	struct zp_config cfg = {.size = (size_t)1 << 30};

	x->nblk = (size_t)(64 * opt_scale);
	if (x->nblk < 2)
		x->nblk = 2;
	x->a = NULL;
	if (kind == K_ZPAGE) {
		/* the embedded default arena is 1 GiB: split it between threads */
		if (x->nblk * nt > 448)
			x->nblk = 448 / nt;
		x->a = arena_or_die(&cfg);
	}
	x->w = xmalloc(nt * sizeof(*x->w));
	x->t = xmalloc(nt * sizeof(*x->t));
	x->gbs = xmalloc((size_t)rounds * sizeof(double));
	pthread_barrier_init(&x->bar, NULL, nt + 1);
	for (unsigned i = 0; i < nt; i++) {
		x->w[i] = (struct worker){.kind = kind,
					  .peer = pe,
					  .a = x->a,
					  .nblk = x->nblk,
					  .random = random,
					  .rng = 0x9e3779b97f4a7c15ull * (i + 1),
					  .bar = &x->bar,
					  .rounds = rounds};
		pthread_create(&x->t[i], NULL, run, &x->w[i]);
	}
}

/* Round @r of row @x: its threads write their blocks; total GB/s from
 * the first thread's start to the last one's end, on their own clocks (a
 * clock read here, after the barrier, may come late: the threads can have
 * both cores before this thread runs again). */
static void row_round(struct anon_row *x, int r)
{
	double t0, t1;

	pthread_barrier_wait(&x->bar);
	pthread_barrier_wait(&x->bar);
	t0 = x->w[0].t0;
	t1 = x->w[0].t1;
	for (unsigned i = 1; i < opt_threads; i++) {
		t0 = x->w[i].t0 < t0 ? x->w[i].t0 : t0;
		t1 = x->w[i].t1 > t1 ? x->w[i].t1 : t1;
	}
	x->gbs[r] = (double)(opt_threads * x->nblk * BLK) / (t1 - t0);
}

static void row_stop(const char *sc, struct anon_row *x, int rounds)
{
	for (unsigned i = 0; i < opt_threads; i++) {
		pthread_join(x->t[i], NULL);
		if (x->w[i].failed)
			die("%s: %s: allocation failed", sc, x->name);
	}
	pthread_barrier_destroy(&x->bar);
	result(sc, x->name, "throughput", "GB/s", x->gbs, (size_t)rounds);
	for (int r = 0; r < rounds; r++)
		x->gbs[r] /= calib.cached_all;
	result(sc, x->name, "of the limit", "x", x->gbs, (size_t)rounds);
	if (x->a)
		arena_done(x->a, sc, x->name);
	free(x->name);
	free(x->w);
	free(x->t);
	free(x->gbs);
}

/*
 * Every row's threads are started first; then each round runs the rows one
 * after the other, in an order rotating from round to round, so that drift
 * on a shared machine hits all rows alike.
 */
static void sc_anon(bool random)
{
	const char *sc = random ? "anon-w-rand" : "anon-w-seq";
	int rounds = opt_scale < 1 ? 2 : 5, n = 0;
	struct anon_row x[2 + NR_PEERS];
	struct rotation rot;

	x[n++].name = xstrdup("zpage");
	row_start(&x[0], K_ZPAGE, NULL, random, rounds);
	x[n++].name = xstrdup("kernel (mmap, THP)");
	row_start(&x[1], K_KERNEL, NULL, random, rounds);
	for (int i = 0; i < NR_PEERS; i++) {
		if (!peers[i].available) {
			note(sc, "%s: not installed", peers[i].name);
			continue;
		}
		x[n].name = xasprintf("%s calloc", peers[i].name);
		row_start(&x[n++], K_PEER, &peers[i], random, rounds);
	}
	rotation_init(&rot, sc, "round", (size_t)n, (size_t)rounds);
	for (int r = 0; r < rounds; r++) {
		const size_t *order = rotation_next(&rot);

		for (int j = 0; j < n; j++) {
			progress("%s: round %d/%d: %s", sc, r + 1, rounds, x[order[j]].name);
			row_round(&x[order[j]], r);
		}
	}
	for (int j = 0; j < n; j++)
		row_stop(sc, &x[j], rounds);
	reference(sc, "kernel (mmap, THP)");
	note(sc,
	     "%u threads, each %zu MiB per round in 2 MiB blocks; round 1 of zpage is fresh memory, later rounds "
	     "reuse what it freed",
	     opt_threads, (size_t)(64 * opt_scale < 2 ? 2 : 64 * opt_scale) * 2);
	note(sc,
	     "of the limit: throughput / %.1f GB/s, the rate at which %u thread%s clear resident, cache-cold "
	     "memory 2 MiB at a time with cached stores (measured at the start): the workload's own writes with "
	     "no allocator, no zeroing and no page faults",
	     calib.cached_all, opt_threads, opt_threads > 1 ? "s" : "");
	rotation_done(&rot);
}

void sc_anon_seq(void)
{
	sc_anon(false);
}

void sc_anon_rand(void)
{
	sc_anon(true);
}
