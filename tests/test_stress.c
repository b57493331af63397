/* SPDX-License-Identifier: MIT */
/*
 * Seeded randomized stress against a reference model.
 *
 * The model is an owner per page (0 = free).  Each allocation claims its
 * pages with a compare-and-swap from 0, so two live blocks that overlap are
 * caught at once, whichever threads hold them.  Each live block carries a
 * tag in the first and last word of every page; a zeroing allocation must
 * read zero before the tag is written, and a free must find its tags intact
 * (nobody else wrote the block).  After each phase: zp_arena_check() and the
 * model's free page count against zp_arena_stats().
 *
 * Seed: ZPAGE_TEST_SEED, or a fixed default; printed so a failure can be
 * replayed.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "test.h"

#define PAGES	  2048
#define MAX_ORDER 10
#define LIVE	  256

static struct zp_arena *A;
static _Atomic int owner[PAGES];
static unsigned long long seed = 0x5eed2026;

struct blk {
	char *p;
	unsigned order;
	uint64_t tag;
};

static uint64_t rnd(uint64_t *s) /* xorshift64* */
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

static unsigned rnd_order(uint64_t *s)
{
	unsigned o = 0;

	while (o < MAX_ORDER && (rnd(s) & 1) == 0) /* P(order >= k) = 2^-k */
		o++;
	return o;
}

static int claim(const struct blk *b, int id)
{
	size_t pfn = t_pfn(A, b->p), n = (size_t)1 << b->order;

	for (size_t i = 0; i < n; i++) {
		int expect = 0;

		if (!atomic_compare_exchange_strong(&owner[pfn + i], &expect, id)) {
			T_DIAG("overlap: page %zu owned by %d, handed to %d", pfn + i, expect, id);
			return -1;
		}
	}
	return 0;
}

static void release(const struct blk *b)
{
	size_t pfn = t_pfn(A, b->p), n = (size_t)1 << b->order;

	for (size_t i = 0; i < n; i++)
		atomic_store(&owner[pfn + i], 0);
}

static void tag(const struct blk *b)
{
	for (size_t i = 0; i < ((size_t)1 << b->order); i++) {
		uint64_t *w = (uint64_t *)(b->p + (i << ZP_PAGE_SHIFT));

		w[0] = b->tag;
		w[ZP_PAGE_SIZE / 8 - 1] = b->tag + i;
	}
}

static int tags_intact(const struct blk *b)
{
	for (size_t i = 0; i < ((size_t)1 << b->order); i++) {
		uint64_t *w = (uint64_t *)(b->p + (i << ZP_PAGE_SHIFT));

		if (w[0] != b->tag || w[ZP_PAGE_SIZE / 8 - 1] != b->tag + i)
			return 0;
	}
	return 1;
}

struct worker {
	int id;
	uint64_t rng;
	unsigned ops;
	int double_frees; /* only single-threaded: a freed block may be reused at once */
	struct blk live[LIVE];
	size_t nlive;
	size_t live_pages;
	long errors;
	long enomem;
};

/* A shared pool so blocks are freed by threads other than their allocator. */
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct blk pool[64];
static size_t npool;

static int do_free(struct worker *w, struct blk b)
{
	if (!tags_intact(&b)) {
		T_DIAG("worker %d: block %p order %u was overwritten", w->id, (void *)b.p, b.order);
		return -1;
	}
	release(&b);
	if (zp_free_pages(A, b.p, b.order)) {
		T_DIAG("worker %d: free of %p order %u refused", w->id, (void *)b.p, b.order);
		return -1;
	}
	if (w->double_frees && (rnd(&w->rng) & 7) == 0 && zp_free_pages(A, b.p, b.order) != -EINVAL) {
		T_DIAG("double free of %p accepted", (void *)b.p);
		return -1;
	}
	return 0;
}

static void *run_worker(void *arg)
{
	struct worker *w = arg;

	for (unsigned op = 0; op < w->ops && !w->errors; op++) {
		uint64_t r = rnd(&w->rng);

		if (w->nlive < LIVE && (w->nlive == 0 || (r & 1))) {
			struct blk b = {.order = rnd_order(&w->rng), .tag = rnd(&w->rng) | 1};
			zp_gfp_t gfp = (r >> 1) & 1 ? ZP_GFP_ZERO : 0;
			uintptr_t ua = (r >> 2) & 1 ? (uintptr_t)rnd(&w->rng) : ZP_USER_ADDR_NONE;

			b.p = zp_alloc_pages(A, gfp, b.order, ua);
			if (!b.p) {
				if (errno != ENOMEM)
					w->errors++;
				w->enomem++;
				continue;
			}
			if ((uintptr_t)(b.p - A->base) & ((ZP_PAGE_SIZE << b.order) - 1)) {
				T_DIAG("misaligned block %p order %u", (void *)b.p, b.order);
				w->errors++;
			}
			if (claim(&b, w->id))
				w->errors++;
			if (gfp && !t_all_zero(b.p, ZP_PAGE_SIZE << b.order)) {
				T_DIAG("zeroing allocation %p order %u is not zero", (void *)b.p, b.order);
				w->errors++;
			}
			tag(&b);
			w->live[w->nlive++] = b;
			w->live_pages += (size_t)1 << b.order;
		} else {
			size_t i = (size_t)(r >> 8) % w->nlive;
			struct blk b = w->live[i];

			w->live[i] = w->live[--w->nlive];
			w->live_pages -= (size_t)1 << b.order;
			if ((r >> 3) & 1) { /* hand it to the pool, take another from it */
				struct blk other = {0};

				pthread_mutex_lock(&pool_lock);
				if (npool)
					other = pool[--npool];
				if (npool < 64)
					pool[npool++] = b, b.p = NULL;
				pthread_mutex_unlock(&pool_lock);
				if (b.p && do_free(w, b))
					w->errors++;
				if (other.p && do_free(w, other))
					w->errors++;
			} else if (do_free(w, b)) {
				w->errors++;
			}
		}
	}
	return NULL;
}

static void drain_worker(struct worker *w)
{
	while (w->nlive) {
		if (do_free(w, w->live[--w->nlive]))
			w->errors++;
	}
	w->live_pages = 0;
}

static void drain_pool(struct worker *w)
{
	while (npool)
		if (do_free(w, pool[--npool]))
			w->errors++;
}

static unsigned merge_order_set; /* 0: the arena's own */

static void setup(void)
{
	struct zp_config c = {.size = PAGES * ZP_PAGE_SIZE, .max_order = MAX_ORDER};

	A = zp_arena_create(&c);
	if (A && merge_order_set) /* before any block is listed */
		A->merge_order = merge_order_set;
	memset(owner, 0, sizeof(owner));
	npool = 0;
}

/* Everything free again: every page must be obtainable as max-order blocks. */
static void all_back(void)
{
	void *p[PAGES >> MAX_ORDER];

	EXPECT_EQ(t_stats(A).nr_free, PAGES);
	for (size_t i = 0; i < PAGES >> MAX_ORDER; i++) {
		p[i] = zp_alloc_pages(A, ZP_GFP_ZERO, MAX_ORDER, ZP_USER_ADDR_NONE);
		EXPECT(p[i] && t_all_zero(p[i], ZP_PAGE_SIZE << MAX_ORDER));
	}
	EXPECT_EQ(t_stats(A).nr_free, 0);
	EXPECT_EQ(zp_arena_check(A), 0);
	zp_arena_destroy(A);
}

static size_t pool_pages(void)
{
	size_t n = 0;

	for (size_t i = 0; i < npool; i++)
		n += (size_t)1 << pool[i].order;
	return n;
}

static void single_threaded(void)
{
	static struct worker w;

	setup();
	ASSERT(A);
	w = (struct worker){.id = 1, .rng = seed, .ops = 5000, .double_frees = 1};
	for (int phase = 0; phase < 10; phase++) {
		run_worker(&w);
		ASSERT_EQ(w.errors, 0);
		ASSERT_EQ(zp_arena_check(A), 0);
		EXPECT_EQ(t_stats(A).nr_free, PAGES - w.live_pages - pool_pages());
		w.ops = 5000;
	}
	EXPECT(w.enomem > 0); /* the arena was really exhausted at times */
	drain_worker(&w);
	drain_pool(&w);
	EXPECT_EQ(w.errors, 0);
	all_back();
}

#define NTHREADS 4

static void multi_threaded(void)
{
	static struct worker w[NTHREADS];
	pthread_t t[NTHREADS];

	setup();
	ASSERT(A);
	for (int phase = 0; phase < 4; phase++) {
		size_t live = 0;

		for (int i = 0; i < NTHREADS; i++) {
			if (phase == 0)
				w[i] = (struct worker){.id = i + 1, .rng = seed * (i + 3) + 1};
			w[i].ops = 5000;
			ASSERT_EQ(pthread_create(&t[i], NULL, run_worker, &w[i]), 0);
		}
		for (int i = 0; i < NTHREADS; i++) {
			pthread_join(t[i], NULL);
			EXPECT_EQ(w[i].errors, 0);
			live += w[i].live_pages;
		}
		ASSERT_EQ(zp_arena_check(A), 0);
		EXPECT_EQ(t_stats(A).nr_free, PAGES - live - pool_pages());
	}
	for (int i = 0; i < NTHREADS; i++) {
		drain_worker(&w[i]);
		EXPECT_EQ(w[i].errors, 0);
	}
	drain_pool(&w[0]);
	EXPECT_EQ(w[0].errors, 0);
	all_back();
}

/* The same with merging waiting from order 1 up (a test control; the
 * arena's own merge_order is 9 here), so that most frees leave a merge
 * owed and most requests make some: the merges owed, under the reference
 * model and the checker. */
static void single_threaded_merging_late(void)
{
	merge_order_set = 1;
	single_threaded();
	merge_order_set = 0;
}

static void multi_threaded_merging_late(void)
{
	merge_order_set = 1;
	multi_threaded();
	merge_order_set = 0;
}

/* Threads racing to free the same block: exactly one wins. */
static void *racer(void *arg)
{
	void **p = arg;

	return (void *)(intptr_t)zp_free_pages(A, *p, 2);
}

static void racing_double_free(void)
{
	setup();
	ASSERT(A);
	for (int round = 0; round < 200; round++) {
		void *p = zp_alloc_pages(A, 0, 2, ZP_USER_ADDR_NONE);
		pthread_t t1, t2;
		void *r1, *r2;

		ASSERT(p);
		pthread_create(&t1, NULL, racer, &p);
		pthread_create(&t2, NULL, racer, &p);
		pthread_join(t1, &r1);
		pthread_join(t2, &r2);
		if (!((r1 == NULL) ^ (r2 == NULL)) || (intptr_t)r1 + (intptr_t)r2 != -EINVAL) {
			T_REPORT("round %d: frees returned %ld and %ld", round, (long)(intptr_t)r1, (long)(intptr_t)r2);
			break;
		}
	}
	EXPECT_EQ(zp_arena_check(A), 0);
	all_back();
}

int main(int argc, char **argv)
{
	const char *s = getenv("ZPAGE_TEST_SEED");

	t_init(argc, argv);
	if (s)
		seed = strtoull(s, NULL, 0);
	T_NOTE("test_stress: seed %#llx (to replay a failure: ZPAGE_TEST_SEED=%#llx %s NAME)", seed, seed, argv[0]);
	RUN(single_threaded);
	RUN(multi_threaded);
	RUN(single_threaded_merging_late);
	RUN(multi_threaded_merging_late);
	RUN(racing_double_free);
	return t_done("test_stress");
}
