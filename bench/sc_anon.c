/* SPDX-License-Identifier: MIT */
/*
 * anon-w-seq / anon-w-rand, after vm-scalability's cases of those names:
 * each of N threads takes a region in 2 MiB zeroed blocks and writes every
 * 8-byte word of it, pages in order (seq) or in a random order (rand), then
 * gives the blocks back; total GB/s over the round, median over rounds.
 * Round 1 of zpage takes fresh memory; later rounds reuse freed (dirty)
 * memory, which zpage clears with the target page (the first one written)
 * last.  The kernel row maps and unmaps the region each round (THP asked).
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
		pthread_barrier_wait(w->bar);
	}
	free(p);
	return NULL;
}

static void one_row(const char *sc, const char *row, enum kind kind, const struct peer *pe, bool random)
{
	unsigned nt = opt_threads;
	size_t nblk = (size_t)(64 * opt_scale);
	int rounds = opt_scale < 1 ? 2 : 5;
	struct zp_config cfg = {.size = (size_t)1 << 30};
	struct zp_arena *a = NULL;
	struct worker *w = xmalloc(nt * sizeof(*w));
	pthread_t *t = xmalloc(nt * sizeof(*t));
	pthread_barrier_t bar;
	double *gbs = xmalloc((size_t)rounds * sizeof(double));

	if (nblk < 2)
		nblk = 2;
	if (kind == K_ZPAGE) {
		/* the embedded default arena is 1 GiB: split it between threads */
		if (nblk * nt > 448)
			nblk = 448 / nt;
		a = arena_or_die(&cfg);
	}
	pthread_barrier_init(&bar, NULL, nt + 1);
	for (unsigned i = 0; i < nt; i++) {
		w[i] = (struct worker){kind, pe, a, nblk, random, 0x9e3779b97f4a7c15ull * (i + 1), &bar, rounds, 0};
		pthread_create(&t[i], NULL, run, &w[i]);
	}
	for (int r = 0; r < rounds; r++) {
		double t0;

		progress("%s: %s round %d/%d", sc, row, r + 1, rounds);
		pthread_barrier_wait(&bar);
		t0 = now_ns();
		pthread_barrier_wait(&bar);
		gbs[r] = (double)(nt * nblk * BLK) / (now_ns() - t0);
	}
	for (unsigned i = 0; i < nt; i++) {
		pthread_join(t[i], NULL);
		if (w[i].failed)
			die("%s: %s: allocation failed", sc, row);
	}
	pthread_barrier_destroy(&bar);
	result(sc, row, "throughput", "GB/s", gbs, (size_t)rounds);
	if (a)
		arena_done(a, sc, row);
	free(w);
	free(t);
	free(gbs);
}

static void sc_anon(bool random)
{
	const char *sc = random ? "anon-w-rand" : "anon-w-seq";

	one_row(sc, "zpage", K_ZPAGE, NULL, random);
	one_row(sc, "kernel (mmap, THP)", K_KERNEL, NULL, random);
	for (int i = 0; i < NR_PEERS; i++) {
		char row[48];

		snprintf(row, sizeof(row), "%s calloc", peers[i].name);
		if (peers[i].available)
			one_row(sc, row, K_PEER, &peers[i], random);
		else
			note(sc, "%s: not installed", peers[i].name);
	}
	reference(sc, "kernel (mmap, THP)");
	note(sc,
	     "%u threads, each %zu MiB per round in 2 MiB blocks; round 1 of zpage is fresh memory, later rounds "
	     "reuse what it freed",
	     opt_threads, (size_t)(64 * opt_scale < 2 ? 2 : 64 * opt_scale) * 2);
}

void sc_anon_seq(void)
{
	sc_anon(false);
}

void sc_anon_rand(void)
{
	sc_anon(true);
}
