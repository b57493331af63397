/* SPDX-License-Identifier: MIT */
/*
 * The per-thread caches (src/tcache.c): what they must keep.
 *
 *  - a thread's cache goes back to the arena when the thread exits;
 *  - a block freed by another thread than the one that allocated it goes
 *    to the freeing thread's cache, and every page stays obtainable;
 *  - exhaustion: pages spread across the caches of live, idle threads are
 *    drained before ENOMEM, by any order, the largest included;
 *  - bad frees of cached blocks (double, wrong order, interior, sitting in
 *    another live thread's cache) return -EINVAL with nothing changed;
 *  - a cached page never forgets it is zero, across threads; a dirty one
 *    comes back cleared (the zeroing allocation's short path), with cached
 *    stores when this thread freed it there (a clear hook sees which);
 *  - zp_arena_check(), stats and dump quiesce caches whose owners are
 *    allocating and freeing at that moment;
 *  - an arena destroyed while threads still have caches for it: those
 *    threads go on with other arenas (their stale caches are freed);
 *  - the bias: a cache frees its owner's blocks plainly once biased; a free
 *    of one of them by another thread unbiases it (one stop) and is valid;
 *    the owner and another thread racing to free the same block, biased or
 *    biasing meanwhile, never both succeed; a cache's blocks outlive its
 *    thread and fork; caches beyond the table's slots never bias;
 *  - with membarrier refused (forced here), the fallback handshake.
 * The plain build runs the membarrier handshake, the TSan one its fallback.
 */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

static double t_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define PAGES 256

struct held {
	struct zp_arena *a;
	unsigned order;
	int n;
	void *p[PAGES];
	pthread_barrier_t *ready, *go; /* NULL: exit at once */
};

/* Allocate n blocks, free them (they sit in this thread's cache), wait. */
static void *cache_and_wait(void *arg)
{
	struct held *h = arg;

	for (int i = 0; i < h->n; i++)
		if (!(h->p[i] = zp_alloc_pages(h->a, 0, h->order, ZP_USER_ADDR_NONE)))
			return (void *)1;
	for (int i = 0; i < h->n; i++)
		if (zp_free_pages(h->a, h->p[i], h->order))
			return (void *)2;
	if (h->ready) {
		pthread_barrier_wait(h->ready);
		pthread_barrier_wait(h->go);
	}
	return NULL;
}

static size_t cached_pages(struct zp_arena *a)
{
	struct tc_totals tc;

	lock_all(a);
	tc_sum(a, &tc);
	unlock_all(a);
	return tc.cnt.pages;
}

static unsigned nr_caches(struct zp_arena *a)
{
	struct tc_totals tc;

	lock_all(a);
	tc_sum(a, &tc);
	unlock_all(a);
	return tc.nr_caches;
}

/* Every page can be had again as max-order blocks. */
static void expect_all_obtainable(struct zp_arena *a, unsigned max_order)
{
	size_t n = PAGES >> max_order;
	void *p[PAGES];

	for (size_t i = 0; i < n; i++)
		EXPECT((p[i] = zp_alloc_pages(a, 0, max_order, ZP_USER_ADDR_NONE)) != NULL);
	EXPECT_EQ(t_stats(a).nr_free, 0);
	for (size_t i = 0; i < n; i++)
		if (p[i])
			EXPECT_EQ(zp_free_pages(a, p[i], max_order), 0);
}

static void thread_exit_returns_cache(void)
{
	struct zp_arena *a = t_arena(PAGES, 8, 0);
	struct held h = {.a = a, .order = 0, .n = 40};
	pthread_t t;
	void *ret;

	ASSERT_EQ(pthread_create(&t, NULL, cache_and_wait, &h), 0);
	pthread_join(t, &ret);
	EXPECT_EQ(ret, NULL);
	EXPECT_EQ(nr_caches(a), 0); /* the exited thread's cache is gone */
	EXPECT_EQ(cached_pages(a), 0);
	EXPECT_EQ(t_stats(a).nr_free, PAGES);
	EXPECT_EQ(zp_arena_check(a), 0);
	/* its pages merged back: a max-order block without draining anything */
	expect_all_obtainable(a, 8);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/* A allocates, B frees: B's cache gets the blocks. */
struct cross {
	struct zp_arena *a;
	void **p;
	int n;
};

static void *free_them(void *arg)
{
	struct cross *c = arg;
	intptr_t bad = 0;

	for (int i = 0; i < c->n; i++)
		bad += zp_free_pages(c->a, c->p[i], 1) != 0;
	return (void *)bad;
}

static void cross_thread_frees(void)
{
	struct zp_arena *a = t_arena(PAGES, 8, 0);
	void *p[64];
	struct cross c = {.a = a, .p = p, .n = 64};
	pthread_t t;
	void *ret;

	for (int round = 0; round < 20; round++) {
		for (int i = 0; i < 64; i++)
			ASSERT((p[i] = zp_alloc_pages(a, 0, 1, ZP_USER_ADDR_NONE)));
		ASSERT_EQ(pthread_create(&t, NULL, free_them, &c), 0);
		pthread_join(t, &ret);
		EXPECT_EQ(ret, NULL);
		EXPECT_EQ(t_stats(a).nr_free, PAGES);
		ASSERT_EQ(zp_arena_check(a), 0);
	}
	expect_all_obtainable(a, 8);
	zp_arena_destroy(a);
}

/* Four live, idle threads hold pages in their caches (40 pages each, of
 * orders 0..3); the main thread still gets the whole arena as max-order
 * blocks, and then every order-0 page. */
static void exhaustion_drains_other_threads(void)
{
	enum { N = 4 };
	struct zp_arena *a = t_arena(PAGES, 8, 0);
	pthread_barrier_t ready, go;
	struct held h[N];
	pthread_t t[N];
	void *p[PAGES], *ret;
	int got = 0;

	pthread_barrier_init(&ready, NULL, N + 1);
	pthread_barrier_init(&go, NULL, N + 1);
	for (int i = 0; i < N; i++) {
		h[i] = (struct held){.a = a, .order = (unsigned)i, .n = 40 >> i, .ready = &ready, .go = &go};
		ASSERT_EQ(pthread_create(&t[i], NULL, cache_and_wait, &h[i]), 0);
	}
	pthread_barrier_wait(&ready);
	EXPECT_EQ(nr_caches(a), N);
	EXPECT_GE(cached_pages(a), 4 * 40 - 16); /* what they hold, refills aside */
	EXPECT_EQ(t_stats(a).nr_free, PAGES);
	/* the largest order: every cache drained and merged */
	p[0] = zp_alloc_pages(a, 0, 8, ZP_USER_ADDR_NONE);
	EXPECT(p[0] != NULL);
	EXPECT_EQ(cached_pages(a), 0);
	if (p[0])
		EXPECT_EQ(zp_free_pages(a, p[0], 8), 0);
	/* fill the caches again from the threads' side?  They are waiting; fill
	 * ours, then take every page one by one */
	while (got < PAGES && (p[got] = zp_alloc_pages(a, 0, 0, ZP_USER_ADDR_NONE)))
		got++;
	EXPECT_EQ(got, PAGES);
	EXPECT_EQ(zp_alloc_pages(a, 0, 0, ZP_USER_ADDR_NONE), NULL);
	EXPECT_EQ(errno, ENOMEM);
	EXPECT_EQ(t_stats(a).nr_free, 0);
	EXPECT_EQ(zp_arena_check(a), 0);
	for (int i = 0; i < got; i++)
		EXPECT_EQ(zp_free_pages(a, p[i], 0), 0);
	pthread_barrier_wait(&go);
	for (int i = 0; i < N; i++) {
		pthread_join(t[i], &ret);
		EXPECT_EQ(ret, NULL);
	}
	EXPECT_EQ(t_stats(a).nr_free, PAGES);
	EXPECT_EQ(zp_arena_check(a), 0);
	pthread_barrier_destroy(&ready);
	pthread_barrier_destroy(&go);
	zp_arena_destroy(a);
}

/* Bad frees of blocks sitting in a cache, this thread's or another live
 * thread's: -EINVAL, nothing changed. */
static void bad_frees_of_cached_blocks(void)
{
	struct zp_arena *a = t_arena(PAGES, 8, 0);
	pthread_barrier_t ready, go;
	struct held h = {.a = a, .order = 2, .n = 8, .ready = &ready, .go = &go};
	struct zp_stats s0, s1;
	pthread_t t;
	void *mine, *ret;

	pthread_barrier_init(&ready, NULL, 2);
	pthread_barrier_init(&go, NULL, 2);
	ASSERT_EQ(pthread_create(&t, NULL, cache_and_wait, &h), 0);
	pthread_barrier_wait(&ready);
	ASSERT((mine = zp_alloc_pages(a, 0, 1, ZP_USER_ADDR_NONE)));
	ASSERT_EQ(zp_free_pages(a, mine, 1), 0); /* in this thread's cache now */
	s0 = t_stats(a);
	for (int i = 0; i < h.n; i++) {
		EXPECT_EQ(zp_free_pages(a, h.p[i], 2), -EINVAL); /* in the other thread's cache */
		EXPECT_EQ(zp_free_pages(a, h.p[i], 0), -EINVAL); /* wrong order too */
		EXPECT_EQ(zp_free_pages(a, (char *)h.p[i] + ZP_PAGE_SIZE, 0), -EINVAL); /* interior */
		EXPECT_EQ(zp_free(a, h.p[i]), -EINVAL); /* the exact-size free, too */
		EXPECT_EQ(zp_usable_size(a, h.p[i]), 0); /* not a live allocation */
	}
	EXPECT_EQ(zp_free_pages(a, mine, 1), -EINVAL); /* double free, cached here */
	EXPECT_EQ(zp_free_pages(a, mine, 0), -EINVAL);
	EXPECT_EQ(zp_free(a, mine), -EINVAL);
	EXPECT_EQ(zp_usable_size(a, mine), 0);
	s1 = t_stats(a);
	EXPECT(t_stats_equal(&s0, &s1));
	EXPECT_EQ(zp_arena_check(a), 0);
	pthread_barrier_wait(&go);
	pthread_join(t, &ret);
	EXPECT_EQ(ret, NULL);
	EXPECT_EQ(t_stats(a).nr_free, PAGES);
	expect_all_obtainable(a, 8);
	pthread_barrier_destroy(&ready);
	pthread_barrier_destroy(&go);
	zp_arena_destroy(a);
}

/*
 * Zero state in a cache: a thread with eight dirty pages cached makes a
 * zeroing allocation; its cache refills with pre-zeroed pages (a block
 * listed zeroed on the buddy lists), lists them as zeroed beside the dirty
 * ones, and ten more zeroing allocations take them without a clear.  When
 * the thread exits, the five zeroed pages left go back to the buddy lists
 * (21 zeroed there then), and another thread's 21 zeroing allocations take
 * them without a clear; its 22nd must clear a page.  (Zero pages merged
 * into a partly dirty block sit on a dirty list: the caches' refill hint
 * does not see them; that is the lists' rule, not the caches'.)
 */
struct zero_owner {
	struct zp_arena *a;
	char **free_first; /* 8 dirty pages to free into this thread's cache */
	int nalloc;	   /* zeroing allocations to make */
	size_t listed_zeroed, listed_dirty;
	uint64_t cleared, skipped; /* by this thread's allocations */
	int bad;
};

static void *zero_allocs(void *arg)
{
	struct zero_owner *z = arg;
	struct zp_arena *a = z->a;
	uint64_t c0 = t_stats(a).pages_cleared, s0 = t_stats(a).pages_clear_skipped;

	for (int i = 0; z->free_first && i < 8; i++)
		z->bad |= zp_free_pages(a, z->free_first[i], 0) != 0;
	for (int i = 0; i < z->nalloc; i++) {
		char *q = zp_alloc_pages(a, ZP_GFP_ZERO, 0, ZP_USER_ADDR_NONE);

		z->bad |= !q || !t_all_zero(q, ZP_PAGE_SIZE);
		if (i == 0) {
			struct tc_totals tc;

			lock_all(a);
			tc_sum(a, &tc);
			unlock_all(a);
			z->listed_zeroed = tc.blocks[0][ZS_ZEROED];
			z->listed_dirty = tc.blocks[0][ZS_DIRTY];
		}
	}
	z->cleared = t_stats(a).pages_cleared - c0;
	z->skipped = t_stats(a).pages_clear_skipped - s0;
	return NULL;
}

static void cached_zero_state_across_threads(void)
{
	struct zp_arena *a = t_arena(64, 6, 0);
	struct zero_owner z1 = {.a = a, .nalloc = 11}, z2 = {.a = a, .nalloc = 22};
	char *all[64];
	pthread_t t;

	/* every page allocated and written; half of them freed and drained
	 * (dirty, on the buddy lists), then pre-zeroed: one zeroed block */
	for (int i = 0; i < 64; i++) {
		ASSERT((all[i] = zp_alloc_pages(a, 0, 0, ZP_USER_ADDR_NONE)));
		memset(all[i], 0x5a, ZP_PAGE_SIZE);
	}
	for (int i = 32; i < 64; i++)
		ASSERT_EQ(zp_free_pages(a, all[i], 0), 0);
	zp_test_drain_pcp(a);
	ASSERT_EQ(zp_arena_prezero(a, 32 * ZP_PAGE_SIZE), 32);
	EXPECT_EQ(t_stats(a).nr_free_zeroed, 32);
	z1.free_first = all;
	ASSERT_EQ(pthread_create(&t, NULL, zero_allocs, &z1), 0);
	pthread_join(t, NULL);
	EXPECT_EQ(z1.bad, 0);
	EXPECT_EQ(z1.listed_dirty, 8);	 /* its frees */
	EXPECT_EQ(z1.listed_zeroed, 15); /* the refill (16 pages), less the first allocation */
	EXPECT_EQ(z1.cleared, 0);
	EXPECT_EQ(z1.skipped, 11);
	/* it exited: five zeroed pages and eight dirty ones went back */
	EXPECT_EQ(t_stats(a).nr_free_zeroed, 21);
	ASSERT_EQ(pthread_create(&t, NULL, zero_allocs, &z2), 0);
	pthread_join(t, NULL);
	EXPECT_EQ(z2.bad, 0);
	EXPECT_EQ(z2.skipped, 21);
	EXPECT_EQ(z2.cleared, 1);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/*
 * The zero-aware preference inside one cache, with nothing zeroed left on
 * the buddy lists (so the inline zeroing path's hint says go on): a
 * zeroing allocation takes the cached zeroed block, never clears the hot
 * dirty one beside it, until no zeroed block is left anywhere.  Order 0
 * (the 32-byte stores inline, where the CPU has AVX2) and order 1 (rep
 * stosb inline, where it has ERMS or FSRM); on a CPU with neither the
 * usual case is never taken and this checks the general way only.
 */
static void cached_zeroed_before_dirty(void)
{
	for (unsigned order = 0; order <= 1; order++) {
		struct zp_arena *a = t_arena(64, 6, 0);
		size_t n = (size_t)1 << order, nb = 64 / n;
		char *all[64], *last;
		uint64_t c0, s0;

		if (!(order ? a->clear_inline : a->clear_inline_small))
			t_diag("order %u: no inline clear on this CPU, the general way only", order);
		for (size_t i = 0; i < nb; i++) {
			ASSERT((all[i] = zp_alloc_pages(a, 0, order, ZP_USER_ADDR_NONE)));
			memset(all[i], 0x5a, ZP_PAGE_SIZE << order);
		}
		for (size_t i = 32 / n; i < 48 / n; i++) /* pages 32-47: one order-4 block, once drained */
			ASSERT_EQ(zp_free_pages(a, all[i], order), 0);
		zp_test_drain_pcp(a);
		ASSERT_EQ(zp_arena_prezero(a, 16 * ZP_PAGE_SIZE), 16); /* listed zeroed, the only free block */
		EXPECT_EQ(zp_test_nr_free_blocks(a, 4, ZS_ZEROED), 1);
		for (size_t i = 0; i < 8 / n; i++)
			ASSERT_EQ(zp_free_pages(a, all[i], order), 0); /* hot, dirty, PG_full in this cache */
		c0 = t_stats(a).pages_cleared;
		s0 = t_stats(a).pages_clear_skipped;
		/* the first refills all 16 zeroed pages; the next ones take them */
		for (size_t i = 0; i < 16 / n; i++) {
			char *q = zp_alloc_pages(a, ZP_GFP_ZERO, order, ZP_USER_ADDR_NONE);

			ASSERT(q);
			EXPECT(t_all_zero(q, ZP_PAGE_SIZE << order));
			all[32 / n + i] = q;
			if (i == 0)
				EXPECT_EQ(t_stats(a).nr_free_zeroed, 16 - n); /* all in this cache now */
		}
		EXPECT_EQ(t_stats(a).pages_clear_skipped - s0, 16);
		EXPECT_EQ(t_stats(a).pages_cleared - c0, 0);
		/* none zeroed left: the newest dirty block, cleared */
		ASSERT((last = zp_alloc_pages(a, ZP_GFP_ZERO, order, ZP_USER_ADDR_NONE)));
		EXPECT_EQ(last, all[8 / n - 1]);
		EXPECT(t_all_zero(last, ZP_PAGE_SIZE << order));
		EXPECT_EQ(t_stats(a).pages_cleared - c0, n);
		EXPECT_EQ(zp_free_pages(a, last, order), 0);
		for (size_t i = 8 / n; i < nb; i++)
			EXPECT_EQ(zp_free_pages(a, all[i], order), 0);
		EXPECT_EQ(t_stats(a).nr_free, 64); /* every block back */
		EXPECT_EQ(zp_arena_check(a), 0);
		zp_arena_destroy(a);
	}
}

/*
 * The short path for the usual zeroing allocation (clear_small_dirty_block,
 * or without an address, where the CPU allows, the inline clear:
 * page_alloc.c alloc_zeroed_hot()): a block this thread freed dirty comes
 * back from its cache zeroed, counted as cleared and not as skipped, with
 * or without a user address, at every order the caches serve (below the
 * non-temporal threshold and above it: a block freed here a moment ago is
 * cleared with cached stores whatever its size).
 */
static void small_dirty_cached_block_cleared(void)
{
	/* flags: plain (ZP_GFP_ZERO asked), init_on_alloc (no gfp), verify */
	static const unsigned flags[3] = {0, ZP_INIT_ON_ALLOC, ZP_VERIFY};

	for (int f = 0; f < 3; f++) {
		struct zp_arena *a = t_arena(2048, 10, flags[f]);
		zp_gfp_t gfp = flags[f] == ZP_INIT_ON_ALLOC ? 0 : ZP_GFP_ZERO;

		for (unsigned order = 0; order <= 8; order++) {
			size_t len = ZP_PAGE_SIZE << order;
			/* no address; the target in the middle, on the first and the last page */
			uintptr_t base = (uintptr_t)0x7f0000000000, ua[4] = {ZP_USER_ADDR_NONE, base + len / 2 + 123,
									      base, base + len - 1};

			for (int u = 0; u < 4; u++) {
				char *p = zp_alloc_pages(a, 0, order, ZP_USER_ADDR_NONE), *q;
				uint64_t before, skipped;

				ASSERT(p);
				memset(p, 0xa5, len);
				ASSERT_EQ(zp_free_pages(a, p, order), 0);
				before = t_stats(a).pages_cleared;
				skipped = t_stats(a).pages_clear_skipped;
				q = zp_alloc_pages(a, gfp, order, ua[u]);
				EXPECT_EQ(q, p); /* the block just freed, from the cache */
				ASSERT(q);
				EXPECT(t_all_zero(q, len));
				EXPECT_EQ(t_stats(a).pages_cleared - before, (uint64_t)1 << order);
				EXPECT_EQ(t_stats(a).pages_clear_skipped, skipped);
				EXPECT_EQ(t_stats(a).verify_failures, 0);
				ASSERT_EQ(zp_free_pages(a, q, order), 0);
			}
		}
		EXPECT_EQ(zp_arena_check(a), 0);
		zp_arena_destroy(a);
	}
}

/* What a clear hook saw: the events of one allocation. */
/*
 * The clearing exception, seen by the hook: a dirty order-8 block (1 MiB,
 * above clear_nt_min) that this thread freed into its cache comes back
 * cleared with cached stores only, the target page last; the same block
 * drained to the buddy lists first comes back through a refill and gets
 * the general order, its far runs non-temporal (zp_test_drain_pcp() is a
 * quiescer's drain, which leaves no warmth stamp: the block is cold whatever
 * the clock says; test_warm refill_warm_is_hot has the owner's drain).
 */
static void hot_block_cleared_cached(void)
{
	struct zp_arena *a = t_arena(2048, 10, 0);
	const unsigned order = 8;
	const size_t len = ZP_PAGE_SIZE << order, tpage = 100;
	uintptr_t ua = (uintptr_t)0x7f0000000000 + tpage * ZP_PAGE_SIZE + 5;

	for (int drained = 0; drained < 2; drained++) {
		struct t_seen s = {0};
		char *p = zp_alloc_pages(a, 0, order, ZP_USER_ADDR_NONE), *q;

		ASSERT(p);
		memset(p, 0x3c, len);
		ASSERT_EQ(zp_free_pages(a, p, order), 0);
		if (drained)
			zp_test_drain_pcp(a);
		zp_test_set_clear_hook(a, t_see, &s);
		q = zp_alloc_pages(a, ZP_GFP_ZERO, order, ua);
		zp_test_set_clear_hook(a, NULL, NULL);
		ASSERT(q);
		EXPECT(t_all_zero(q, len));
		EXPECT_EQ(s.pages, len / ZP_PAGE_SIZE);
		/* the target page is the last page of the last clear */
		EXPECT_EQ(s.last_pfn + s.last_n - 1, ((uintptr_t)q - (uintptr_t)a->base) / ZP_PAGE_SIZE + tpage);
		if (drained) {
			EXPECT_GT(s.nt_pages, 0);
			EXPECT_EQ(s.hot_pages, 0);
		} else {
			EXPECT_EQ(s.nt_pages, 0);
			EXPECT_EQ(s.hot_pages, s.pages);
		}
		if (strcmp(zero_small_name(), zero_cached_name()))
			EXPECT_EQ(s.small_pages, 0); /* 1 MiB: rep stosb */
		ASSERT_EQ(zp_free_pages(a, q, order), 0);
	}
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/* In @a, an arena of one batch (TC_BATCH_PAGES pages): every block of
 * @order allocated and written, freed, and the cache drained, so that the
 * arena's one free block is dirty on the buddy lists; false if a call
 * failed. */
static bool one_dirty_batch(struct zp_arena *a, unsigned order)
{
	size_t len = ZP_PAGE_SIZE << order, nb = TC_BATCH_PAGES >> order;
	char *p[TC_BATCH_PAGES];

	for (size_t i = 0; i < nb; i++) {
		if (!(p[i] = zp_alloc_pages(a, 0, order, ZP_USER_ADDR_NONE)))
			return false;
		memset(p[i], 0x5a, len);
	}
	for (size_t i = 0; i < nb; i++)
		if (zp_free_pages(a, p[i], order))
			return false;
	zp_test_drain_pcp(a);
	return true;
}

/*
 * Hot or cold at orders 0 to 3, seen by the hook: the blocks a refill
 * brings (PG_cold) are cleared as cold ones (rep stosb, which skips the
 * reads of cold lines), the one the refill hands out and the next, from
 * the cache on the inline path, alike; a block this thread freed comes
 * back hot (the small primitive for a single page).  An arena of one batch, every page of
 * it dirty, so that whatever a refill brings needs a clear.
 */
static void refilled_block_cleared_cold(void)
{
	for (unsigned order = 0; order <= 3; order++) {
		struct zp_arena *a = t_arena(TC_BATCH_PAGES, 4, 0);
		size_t len = ZP_PAGE_SIZE << order;
		char *q[3];

		ASSERT(tc_serves(a, order));
		ASSERT(one_dirty_batch(a, order)); /* one dirty block on the buddy lists */
		for (int k = 0; k < 3; k++) {
			struct t_seen s = {0};

			if (k == 2) /* the second block back into the cache, then out again */
				ASSERT_EQ(zp_free_pages(a, q[1], order), 0);
			zp_test_set_clear_hook(a, t_see, &s);
			q[k] = zp_alloc_pages(a, ZP_GFP_ZERO, order, ZP_USER_ADDR_NONE);
			zp_test_set_clear_hook(a, NULL, NULL);
			ASSERT(q[k]);
			EXPECT(t_all_zero(q[k], len));
			EXPECT_EQ(s.pages, len / ZP_PAGE_SIZE);
			EXPECT_EQ(s.nt_pages, 0);
			EXPECT_EQ(s.hot_pages, k == 2 ? s.pages : 0);
			if (strcmp(zero_small_name(), zero_cached_name())) /* a CPU with AVX2 */
				EXPECT_EQ(s.small_pages, k == 2 && len <= SMALL_CACHED_MAX ? s.pages : 0);
		}
		EXPECT_EQ(q[2], q[1]);
		EXPECT_EQ(zp_arena_check(a), 0);
		ASSERT_EQ(zp_free_pages(a, q[0], order), 0);
		ASSERT_EQ(zp_free_pages(a, q[2], order), 0);
		EXPECT_EQ(zp_arena_check(a), 0);
		zp_arena_destroy(a);
	}
}

/*
 * The inline clear's rule (page_alloc.c clear_inline_ok()), seen by the
 * sanitizer builds' count of inline clears (no hook: a hook turns the
 * inline clear off): at orders 0 to 3, in an arena of one batch with every
 * page dirty, the block a refill hands out and the cold one behind it
 * (PG_cold) are not cleared inline; a block this thread freed (hot,
 * PG_full) is, where the CPU allows the stores; the same hot block asked
 * for with an address is not.  Each comes back zeroed and counted.  A hot
 * block that is not PG_full (zero, freed with init_on_free) comes back
 * with its clear skipped, not cleared inline.  The plain build checks
 * everything but the count, then says it skipped that.
 */
static void inline_clear_only_hot_full_no_address(void)
{
	bool counted = true;

	for (unsigned order = 0; order <= 3; order++) {
		struct zp_arena *a = t_arena(TC_BATCH_PAGES, 4, 0);
		size_t len = ZP_PAGE_SIZE << order;
		bool allowed = len > SMALL_CACHED_MAX ? a->clear_inline : a->clear_inline_small;
		char *q[4];

		counted = zp_test_inline_clears(a) != UINT64_MAX;
		if (!allowed)
			t_diag("order %u: no inline clear on this CPU, none expected", order);
		ASSERT(tc_serves(a, order));
		ASSERT(one_dirty_batch(a, order)); /* one dirty block on the buddy lists */
		for (int k = 0; k < 4; k++) {
			/* 0: the refill's; 1: the cold one behind it in the
			 * cache (the refill split the arena's one block: at
			 * least two of these orders); 2: block 1 freed here,
			 * hot; 3: the same again, asked for with an address */
			uint64_t c0, n0;
			bool inl = k == 2 && allowed;
			uintptr_t addr = ZP_USER_ADDR_NONE;

			if (k >= 2)
				ASSERT_EQ(zp_free_pages(a, q[1], order), 0);
			if (k == 3)
				addr = (uintptr_t)q[1] + len - 1;
			c0 = t_stats(a).pages_cleared;
			n0 = zp_test_inline_clears(a);
			q[k] = zp_alloc_pages(a, ZP_GFP_ZERO, order, addr);
			ASSERT(q[k]);
			EXPECT(t_all_zero(q[k], len));
			EXPECT_EQ(t_stats(a).pages_cleared - c0, len / ZP_PAGE_SIZE);
			if (counted)
				EXPECT_EQ(zp_test_inline_clears(a) - n0, inl ? 1 : 0);
			if (k == 0) { /* the rest of the batch is in this cache, none on the lists */
				ASSERT(tc_mine(a));
				EXPECT_EQ(tc_mine(a)->pages, TC_BATCH_PAGES - len / ZP_PAGE_SIZE);
				EXPECT_EQ(t_stats(a).nr_free, TC_BATCH_PAGES - len / ZP_PAGE_SIZE);
			}
			if (k >= 2)
				EXPECT_EQ(q[k], q[1]);
		}
		EXPECT_EQ(zp_arena_check(a), 0);
		ASSERT_EQ(zp_free_pages(a, q[0], order), 0);
		ASSERT_EQ(zp_free_pages(a, q[3], order), 0);
		EXPECT_EQ(zp_arena_check(a), 0);
		zp_arena_destroy(a);

		/* hot but not PG_full: with init_on_free a block freed here is
		 * zero, and comes back skipped, never cleared inline */
		a = t_arena(TC_BATCH_PAGES, 4, ZP_INIT_ON_FREE);
		ASSERT((q[0] = zp_alloc_pages(a, 0, order, ZP_USER_ADDR_NONE)));
		memset(q[0], 0x5a, len);
		ASSERT_EQ(zp_free_pages(a, q[0], order), 0);
		{
			uint64_t c0 = t_stats(a).pages_cleared, s0 = t_stats(a).pages_clear_skipped;
			uint64_t n0 = zp_test_inline_clears(a);

			q[1] = zp_alloc_pages(a, ZP_GFP_ZERO, order, ZP_USER_ADDR_NONE);
			EXPECT_EQ(q[1], q[0]);
			EXPECT(q[1] && t_all_zero(q[1], len));
			EXPECT_EQ(t_stats(a).pages_cleared - c0, 0);
			EXPECT_EQ(t_stats(a).pages_clear_skipped - s0, len / ZP_PAGE_SIZE);
			if (counted)
				EXPECT_EQ(zp_test_inline_clears(a) - n0, 0);
		}
		EXPECT_EQ(zp_arena_check(a), 0);
		ASSERT_EQ(zp_free_pages(a, q[1], order), 0);
		zp_arena_destroy(a);
	}
	if (!counted)
		SKIP("which clears were inline is counted in the sanitizer builds only (ZPAGE_DEBUG_COUNTS);"
		     " the clears, skips and blocks were checked");
}

/*
 * The small primitive is chosen once a block: a hot block of one page gets
 * it, a hot 8 KiB one rep stosb for its one clear, a hot 16 KiB one rep
 * stosb for both of its clears (target page 2: [3, 4), then [0, 3)),
 * though the first is one page.  A block freed
 * and taken back on the slow paths (this thread used another arena last,
 * so the inline ones step aside) is hot as well.
 */
static void hot_primitive_per_block(void)
{
	struct zp_arena *a = t_arena(2048, 10, 0), *b = t_arena(64, 4, 0);
	bool avx = strcmp(zero_small_name(), zero_cached_name()) != 0;

	for (unsigned order = 0; order <= 2; order++) {
		size_t len = ZP_PAGE_SIZE << order, n = (size_t)1 << order;
		uintptr_t ua = (uintptr_t)0x7f0000000000 + len / 2 + 7;
		size_t t = (ua >> ZP_PAGE_SHIFT) & (n - 1); /* the target page */

		for (int slow = 0; slow < 2; slow++) {
			struct t_seen s = {0};
			char *p = zp_alloc_pages(a, 0, order, ZP_USER_ADDR_NONE), *q, *other = NULL;

			ASSERT(p);
			memset(p, 0x11, len);
			if (slow) {
				other = zp_alloc_pages(b, 0, 0, ZP_USER_ADDR_NONE);
				ASSERT(other);
				ASSERT(tc_mine(a) == NULL); /* b's cache is the last one */
			}
			ASSERT_EQ(zp_free_pages(a, p, order), 0);
			if (slow) {
				ASSERT_EQ(zp_free_pages(b, other, 0), 0);
				ASSERT(tc_mine(a) == NULL);
			}
			zp_test_set_clear_hook(a, t_see, &s);
			q = zp_alloc_pages(a, ZP_GFP_ZERO, order, ua);
			zp_test_set_clear_hook(a, NULL, NULL);
			ASSERT(q);
			EXPECT_EQ(q, p);
			EXPECT(t_all_zero(q, len));
			EXPECT_EQ(s.pages, n);
			EXPECT_EQ(s.n, t + 1 < n ? 2 : 1);
			EXPECT_EQ(s.hot_pages, n);
			if (avx)
				EXPECT_EQ(s.small_pages, order == 0 ? n : 0);
			ASSERT_EQ(zp_free_pages(a, q, order), 0);
		}
	}
	EXPECT_EQ(zp_arena_check(a), 0);
	EXPECT_EQ(zp_arena_check(b), 0);
	zp_arena_destroy(b);
	zp_arena_destroy(a);
}

/*
 * Partly dirty blocks in a cache: two 3-page exact allocations, written and
 * freed, leave order-2 blocks whose last page was never used (zero); a
 * refill of dirty order-1 blocks then brings two all-dirty pairs and two
 * partly dirty ones, and every one of them (the first handed out by the
 * refill; of the others, a zeroing request's by the inline path, and a
 * partly dirty one, which lacks PG_full, by the whole way) comes back with its zero bits
 * dropped (the checker proves it of allocated blocks) and, for a zeroing
 * request, only its dirty pages cleared.
 */
static void partial_cached_block(void)
{
	for (int zero = 0; zero < 2; zero++) {
		struct zp_arena *a = t_arena(64, 4, 0);
		char *x[2], *q[8];
		int partial = 0, n = 0;
		uint64_t cleared, skipped;

		for (int i = 0; i < 2; i++) {
			x[i] = zp_alloc(a, 0, 3 * ZP_PAGE_SIZE, ZP_USER_ADDR_NONE);
			ASSERT(x[i]);
			memset(x[i], 0x6b, 3 * ZP_PAGE_SIZE);
		}
		for (int i = 0; i < 2; i++)
			ASSERT_EQ(zp_free(a, x[i]), 0);
		zp_test_drain_pcp(a);
		EXPECT_EQ(zp_arena_check(a), 0);
		cleared = t_stats(a).pages_cleared;
		skipped = t_stats(a).pages_clear_skipped;
		/* the first allocation refills; count what the refill brought */
		q[n] = zp_alloc_pages(a, zero ? ZP_GFP_ZERO : 0, 1, ZP_USER_ADDR_NONE);
		ASSERT(q[n]);
		n++;
		{
			struct tcache *t = tc_mine(a);

			ASSERT(t);
			for (int st = 0; st < NR_ZSTATES; st++)
				for (uint32_t pfn = t->lists[1][st].head; pfn != NIL; pfn = a->pages[pfn].next)
					partial += !zs_small_all_dirty(a, pfn, 1);
		}
		EXPECT_GT(partial, 0); /* one at least for the inline path */
		while (n < 8 && tc_mine(a)->lists[1][ZS_DIRTY].nr) {
			q[n] = zp_alloc_pages(a, zero ? ZP_GFP_ZERO : 0, 1, ZP_USER_ADDR_NONE);
			ASSERT(q[n]);
			n++;
		}
		EXPECT_GT(n, 1);
		for (int i = 0; i < n; i++)
			if (zero)
				EXPECT(t_all_zero(q[i], 2 * ZP_PAGE_SIZE));
		EXPECT_EQ(zp_arena_check(a), 0); /* allocated pages: no zero bit left */
		/* the four pairs of the two blocks: 6 dirty pages, 2 zero ones,
		 * which a zeroing request does not clear */
		EXPECT_EQ(n, 4);
		EXPECT_EQ(t_stats(a).pages_cleared - cleared, zero ? 6u : 0u);
		EXPECT_EQ(t_stats(a).pages_clear_skipped - skipped, zero ? 2u : 0u);
		for (int i = 0; i < n; i++)
			ASSERT_EQ(zp_free_pages(a, q[i], 1), 0);
		EXPECT_EQ(zp_arena_check(a), 0);
		zp_arena_destroy(a);
	}
}

/* Checks, stats and dumps while two threads churn small blocks. */
struct churner {
	struct zp_arena *a;
	atomic_bool *stop;
	pthread_barrier_t *start;
	_Atomic uint64_t ops;
	int errors;
};

static void *churn(void *arg)
{
	struct churner *c = arg;
	void *p[16];
	unsigned x = (unsigned)(uintptr_t)c;

	pthread_barrier_wait(c->start);
	while (!atomic_load(c->stop)) {
		int n = 0;

		for (int i = 0; i < 16; i++) {
			unsigned o = (x = x * 1103515245u + 12345u) >> 16 & 3;

			p[i] = zp_alloc_pages(c->a, (x >> 20) & 1 ? ZP_GFP_ZERO : 0, o, ZP_USER_ADDR_NONE);
			if (p[i]) {
				memset(p[i], 0x77, 64);
				*(unsigned *)((char *)p[i] + 64) = o;
				n = i + 1;
			} else if (errno != ENOMEM) {
				c->errors++;
			}
		}
		for (int i = 0; i < n; i++)
			if (p[i] && zp_free_pages(c->a, p[i], *(unsigned *)((char *)p[i] + 64)))
				c->errors++;
		atomic_fetch_add(&c->ops, 2 * (uint64_t)n);
	}
	return NULL;
}

static void check_while_churning(void)
{
	enum { N = 2, MIN_OPS = 20000 };
	struct zp_arena *a = t_arena(PAGES, 8, 0);
	atomic_bool stop = false;
	pthread_barrier_t start;
	struct churner c[N];
	pthread_t t[N];
	FILE *devnull = fopen("/dev/null", "w");
	double t0 = t_now_s();
	int checks = 0;

	ASSERT(devnull);
	pthread_barrier_init(&start, NULL, N + 1);
	for (int i = 0; i < N; i++) {
		c[i] = (struct churner){.a = a, .stop = &stop, .start = &start};
		ASSERT_EQ(pthread_create(&t[i], NULL, churn, &c[i]), 0);
	}
	pthread_barrier_wait(&start);
	/* at least 300 checks, and on until both churners did MIN_OPS calls
	 * (at most 20 s): the checks overlap the churn */
	while (checks < 300 ||
	       ((atomic_load(&c[0].ops) < MIN_OPS || atomic_load(&c[1].ops) < MIN_OPS) && t_now_s() - t0 < 20)) {
		struct zp_stats s = t_stats(a);

		EXPECT_LE(s.nr_free, PAGES);
		EXPECT_EQ(zp_arena_check(a), 0);
		if (checks++ % 50 == 0)
			zp_arena_dump(a, devnull);
	}
	atomic_store(&stop, true);
	for (int i = 0; i < N; i++) {
		pthread_join(t[i], NULL);
		EXPECT_EQ(c[i].errors, 0);
		EXPECT_GE(atomic_load(&c[i].ops), MIN_OPS); /* not starved by the checks */
	}
	T_NOTE("%d checks while %llu + %llu operations ran", checks, (unsigned long long)atomic_load(&c[0].ops),
	       (unsigned long long)atomic_load(&c[1].ops));
	EXPECT_EQ(t_stats(a).nr_free, PAGES);
	EXPECT_EQ(zp_arena_check(a), 0);
	fclose(devnull);
	pthread_barrier_destroy(&start);
	zp_arena_destroy(a);
}

/* An arena destroyed while a live thread has a cache for it: the thread
 * goes on with a new arena, and its stale cache is freed at that lookup
 * (the thread then owns one cache, not two). */
static void *use_arenas(void *arg)
{
	struct zp_arena **as = arg;
	intptr_t bad = 0;

	for (int k = 0; k < 2; k++) {
		void *p = zp_alloc_pages(as[k], 0, 0, ZP_USER_ADDR_NONE);

		bad |= !p || zp_free_pages(as[k], p, 0);
		bad |= (zp_test_tc_thread_caches() != 1) << 1;
		if (k == 0) {
			pthread_barrier_wait((pthread_barrier_t *)as[2]);
			pthread_barrier_wait((pthread_barrier_t *)as[2]);
		}
	}
	return (void *)bad;
}

static void destroy_with_live_caches(void)
{
	pthread_barrier_t b;
	struct zp_arena *as[3];
	pthread_t t;
	void *ret;

	pthread_barrier_init(&b, NULL, 2);
	as[0] = t_arena(PAGES, 8, 0);
	as[2] = (struct zp_arena *)(void *)&b;
	as[1] = NULL;
	ASSERT_EQ(pthread_create(&t, NULL, use_arenas, as), 0);
	pthread_barrier_wait(&b); /* it has a cache for as[0] */
	EXPECT_EQ(nr_caches(as[0]), 1);
	zp_arena_destroy(as[0]);
	as[1] = t_arena(PAGES, 8, 0); /* may reuse the address */
	pthread_barrier_wait(&b);
	pthread_join(t, &ret);
	EXPECT_EQ(ret, NULL);
	EXPECT_EQ(nr_caches(as[1]), 0); /* the thread exited */
	EXPECT_EQ(t_stats(as[1]).nr_free, PAGES);
	EXPECT_EQ(zp_arena_check(as[1]), 0);
	zp_arena_destroy(as[1]);
	pthread_barrier_destroy(&b);
}

/* A forked child gets the pages other threads held in their caches. */
static void fork_returns_other_threads_caches(void)
{
	struct zp_arena *a = t_arena(PAGES, 8, 0);
	pthread_barrier_t ready, go;
	struct held h = {.a = a, .order = 0, .n = 100, .ready = &ready, .go = &go};
	pthread_t t;
	pid_t pid;

	pthread_barrier_init(&ready, NULL, 2);
	pthread_barrier_init(&go, NULL, 2);
	ASSERT_EQ(pthread_create(&t, NULL, cache_and_wait, &h), 0);
	pthread_barrier_wait(&ready);
	EXPECT_GE(cached_pages(a), 100);
	pid = fork();
	if (pid == 0) {
		struct tc_totals tc;
		void *p;

		lock_all(a);
		tc_sum(a, &tc); /* the dead thread's cache went back at the fork */
		unlock_all(a);
		if (tc.nr_caches != 0 || t_stats(a).nr_free != PAGES)
			_exit(2);
		p = zp_alloc_pages(a, 0, 8, ZP_USER_ADDR_NONE); /* all of it, at once */
		_exit(!p ? 1 : zp_arena_check(a) ? 3 : 0);
	}
	ASSERT(pid > 0);
	EXPECT_EQ(t_wait_child(pid), 0);
	pthread_barrier_wait(&go);
	pthread_join(t, NULL);
	EXPECT_EQ(t_stats(a).nr_free, PAGES);
	EXPECT_EQ(zp_arena_check(a), 0);
	pthread_barrier_destroy(&ready);
	pthread_barrier_destroy(&go);
	zp_arena_destroy(a);
}

/*
 * A thread cancelled while lock_all() waits, holding tc_lock, for a cache's
 * owner to get off its lists must not take tc_lock with it: that wait
 * sleeps (os_backoff()), and a sleep must not be a cancellation point
 * there.  This thread plays the owner on its lists (tc_try_enter()) while
 * another thread's zp_arena_stats() waits for it and is cancelled; after
 * the owner leaves, zp_arena_stats() must still take every lock.  In a
 * child, so that a hang (SIGALRM) is a failure, not the end of the run.
 */
static struct zp_arena *cw_arena;
static atomic_int cw_calls;

static void *cw_stats(void *arg)
{
	struct zp_stats s;

	(void)arg;
	for (;;) {
		atomic_fetch_add(&cw_calls, 1);
		zp_arena_stats(cw_arena, &s);
		pthread_testcancel();
	}
	return NULL;
}

static void cancelled_quiescer_leaves_no_lock(void)
{
	int st = 0;
	pid_t pid = fork();

	if (pid == 0) {
		struct zp_stats s;
		struct tcache *t;
		pthread_t w;
		void *p;

		alarm(10);
		cw_arena = t_arena(1024, 10, 0);
		p = zp_alloc_pages(cw_arena, 0, 0, ZP_USER_ADDR_NONE);
		if (!p || zp_free_pages(cw_arena, p, 0) || !(t = tc_mine(cw_arena)))
			_exit(2);
		if (!tc_try_enter(t)) /* on its lists: a quiescer waits for it */
			_exit(3);
		pthread_create(&w, NULL, cw_stats, NULL);
		while (!atomic_load(&cw_calls))
			usleep(1000);
		usleep(50 * 1000); /* past the yields: the quiescer sleeps between looks */
		pthread_cancel(w);
		usleep(20 * 1000);
		tc_leave(t);
		pthread_join(w, NULL);
		zp_arena_stats(cw_arena, &s); /* hangs if the cancelled thread kept tc_lock */
		if (zp_arena_check(cw_arena))
			_exit(4);
		_exit(0);
	}
	ASSERT(pid > 0);
	st = t_wait_child(pid);
	if (st > 0)
		T_DIAG("child exit %d: %s", st, st == 4 ? "zp_arena_check failed" : "setting up the owner's cache failed");
	EXPECT_EQ(st, 0);
}

/*
 * A thread's first call on an arena makes its cache.  Made with
 * posix_memalign(), that call deadlocked in a signal handler that had
 * interrupted the same thread inside malloc (glibc's arena lock, held by
 * the thread the handler runs on); the cache is now a mapping of its own.
 * The main thread of a child mallocs and frees 100 KB blocks (past glibc's
 * tcache: each call takes the arena lock) while another thread signals it;
 * each handler makes the main thread's first call on a new arena.  A hang
 * is SIGALRM.  (ThreadSanitizer delivers a signal only outside its
 * interceptors, so there it cannot interrupt malloc: a pass, not a test.)
 */
#define NR_SIG_ARENAS 64
static struct zp_arena *sig_arenas[NR_SIG_ARENAS];
static _Atomic int sig_next; /* lock-free: read by the kicker, written in the handler */
static volatile sig_atomic_t sig_bad;

static void first_call_handler(int sig)
{
	int i = atomic_load(&sig_next), e = errno;
	char *p;

	(void)sig;
	if (i >= NR_SIG_ARENAS)
		return;
	p = zp_alloc_pages(sig_arenas[i], ZP_GFP_ZERO, 0, ZP_USER_ADDR_NONE);
	if (!p || !t_all_zero(p, ZP_PAGE_SIZE))
		sig_bad = 1;
	else
		memset(p, 1, ZP_PAGE_SIZE);
	if (p && zp_free_pages(sig_arenas[i], p, 0))
		sig_bad = 1;
	if (!tc_mine(sig_arenas[i]))
		sig_bad = 2; /* not the cache path: the test would prove nothing */
	atomic_store(&sig_next, i + 1);
	errno = e;
}

/* A thread that sends SIGUSR1 to @target every @us microseconds until
 * @stop is set, and how to start it with @fn as the handler. */
struct kick {
	pthread_t target, thread;
	unsigned us;
	atomic_int stop;
};

static void *kicker(void *arg)
{
	struct kick *k = arg;

	while (!atomic_load(&k->stop)) {
		pthread_kill(k->target, SIGUSR1);
		usleep(k->us);
	}
	return NULL;
}

static bool start_kicker(struct kick *k, void (*fn)(int), unsigned us)
{
	struct sigaction sa = {.sa_handler = fn, .sa_flags = SA_RESTART};

	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	k->target = pthread_self();
	k->us = us;
	atomic_store(&k->stop, 0);
	return pthread_create(&k->thread, NULL, kicker, k) == 0;
}

static void stop_kicker(struct kick *k)
{
	atomic_store(&k->stop, 1);
	pthread_join(k->thread, NULL);
}

static void first_call_in_a_handler_that_interrupted_malloc_child(void)
{
	struct kick k;
	unsigned long mallocs = 0;

	alarm(20);
	for (int i = 0; i < NR_SIG_ARENAS; i++)
		if (!(sig_arenas[i] = t_arena(64, 4, 0)))
			_exit(2);
	if (!start_kicker(&k, first_call_handler, 300))
		_exit(2);
	while (atomic_load(&sig_next) < NR_SIG_ARENAS) {
		char *m = malloc(100000);

		if (m)
			m[mallocs++ % 100000] = 1;
		free(m);
	}
	stop_kicker(&k);
	for (int i = 0; i < NR_SIG_ARENAS; i++) {
		if (zp_arena_check(sig_arenas[i]) || t_stats(sig_arenas[i]).nr_free != 64)
			_exit(5);
		zp_arena_destroy(sig_arenas[i]);
	}
	_exit(sig_bad ? 2 + sig_bad : 0);
}

static void first_call_in_a_handler_that_interrupted_malloc(void)
{
	int st = t_in_child(first_call_in_a_handler_that_interrupted_malloc_child);

	if (st > 0)
		T_DIAG("child exit %d: %s", st,
		       st == 2   ? "an arena or the thread could not be made"
		       : st == 3 ? "a handler's allocation failed, did not read zero or its free failed"
		       : st == 4 ? "a handler's call did not make a thread cache"
		       : st == 5 ? "an arena's check or free count was wrong"
				 : "a sanitizer's report");
	EXPECT_EQ(st, 0);
}

/*
 * A handler that interrupted no call of the library may call it, whatever
 * other code of the library's was running on the thread: the key
 * destructor at thread exit (it unmapped the cache the handler then used,
 * SIGSEGV) and the fork handlers (they hold every lock from prepare to
 * parent or child: the handler waited forever).  Both now block signals.
 * A hang is SIGALRM.
 */
static struct zp_arena *hx_arena;
static __thread volatile sig_atomic_t hx_in_call; /* this thread is in a call of its own */
static _Atomic long hx_handled;
static atomic_int hx_bad;

static void hx_handler(int sig)
{
	int e = errno;
	void *p;

	(void)sig;
	if (hx_in_call)
		return; /* not allowed by the contract */
	p = zp_alloc_pages(hx_arena, 0, 0, ZP_USER_ADDR_NONE);
	if (!p || zp_free_pages(hx_arena, p, 0))
		atomic_store(&hx_bad, 1);
	atomic_fetch_add(&hx_handled, 1);
	errno = e;
}

static void *hx_exiting(void *arg)
{
	void *p;

	(void)arg;
	hx_in_call = 1;
	p = zp_alloc_pages(hx_arena, 0, 0, ZP_USER_ADDR_NONE);
	if (!p || zp_free_pages(hx_arena, p, 0))
		atomic_store(&hx_bad, 1);
	hx_in_call = 0;
	return NULL; /* the key destructor runs next, signals arriving */
}

static void handler_during_thread_exit_child(void)
{
	struct sigaction sa = {.sa_handler = hx_handler, .sa_flags = SA_RESTART};

	alarm(60);
	if (!(hx_arena = t_arena(1024, 9, 0)))
		_exit(2);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL); /* the main thread signals the exiting ones itself */
	for (int i = 0; i < 4000; i++) {
		pthread_t t;

		if (pthread_create(&t, NULL, hx_exiting, NULL))
			_exit(2);
		/* paced: back to back, the handlers can keep a slow
		 * (ASan) thread from ever finishing its exit */
		while (pthread_tryjoin_np(t, NULL) == EBUSY) {
			pthread_kill(t, SIGUSR1);
			usleep(5);
		}
	}
	if (atomic_load(&hx_bad))
		_exit(3);
	if (zp_arena_check(hx_arena) || t_stats(hx_arena).nr_free != 1024)
		_exit(4);
	_exit(0);
}

static void handler_during_thread_exit(void)
{
	int st = t_in_child(handler_during_thread_exit_child);

	if (st > 0)
		T_DIAG("child exit %d: %s", st,
		       st == 2 ? "setting up failed" : st == 3 ? "an allocation or free failed" : "the arena's check failed");
	EXPECT_EQ(st, 0);
}

static void handler_during_fork_child(void)
{
	struct kick k;
	void *p;
	int forks, st;

	alarm(30);
	if (!(hx_arena = t_arena(1024, 9, 0)))
		_exit(2);
	p = zp_alloc_pages(hx_arena, 0, 0, ZP_USER_ADDR_NONE); /* the thread's cache, made here */
	if (!p || zp_free_pages(hx_arena, p, 0))
		_exit(2);
	if (!start_kicker(&k, hx_handler, 50))
		_exit(2);
	for (forks = 0; forks < 1000; forks++) {
		pid_t c = fork();

		if (c == 0)
			_exit(0);
		if (c < 0)
			break;
		while (waitpid(c, NULL, 0) < 0 && errno == EINTR)
			;
	}
	stop_kicker(&k);
	st = atomic_load(&hx_bad) ? 3 : 0;
	if (forks < 1000)
		_exit(2);
	if (!st && (zp_arena_check(hx_arena) || t_stats(hx_arena).nr_free != 1024))
		st = 4;
	_exit(st);
}

static void handler_during_fork(void)
{
	int st = t_in_child(handler_during_fork_child);

	if (st > 0)
		T_DIAG("child exit %d: %s", st,
		       st == 2 ? "setting up or a fork failed" : st == 3 ? "an allocation or free failed" : "the arena's check failed");
	EXPECT_EQ(st, 0);
}

/* ---- the bias (tcache.c): plain frees of a cache's own blocks ---- */

struct one_free {
	struct zp_arena *a;
	void *p;
	unsigned order;
	int ret;
};

static void *free_one(void *arg)
{
	struct one_free *f = arg;

	f->ret = zp_free_pages(f->a, f->p, f->order);
	return NULL;
}

/* zp_free_pages() of @p on a new thread (a cache that did not tag it). */
static int free_in_thread(struct zp_arena *a, void *p, unsigned order)
{
	struct one_free f = {a, p, order, 1};
	pthread_t t;

	if (pthread_create(&t, NULL, free_one, &f))
		return 1;
	pthread_join(t, NULL);
	return f.ret;
}

struct cacheless_frees {
	struct zp_arena *a;
	void **p;
	int n;
	int bad;
	bool cacheless;
};

/* zp_free() of @n blocks on a thread that could map no cache of its own. */
static void *free_them_cacheless(void *arg)
{
	struct cacheless_frees *f = arg;

	for (int i = 0; i < f->n; i++)
		f->bad += zp_free(f->a, f->p[i]) != 0;
	f->cacheless = zp_test_tc_thread_caches() == 0;
	return NULL;
}

/* An order-@order block allocated and freed by this thread. */
static int own_pair(struct zp_arena *a, unsigned order)
{
	void *p = zp_alloc_pages(a, 0, order, ZP_USER_ADDR_NONE);

	return p ? zp_free_pages(a, p, order) : 1;
}

/*
 * A block the inline clear hands out (page_alloc.c: alloc_zeroed_hot(), a
 * hot dirty cached block, no address, no hook: one page with the vector
 * stores, 8 KiB with rep stosb) carries its cache's tag like any other:
 * its owner's frees of it count towards biasing the cache (4 frees here:
 * one of a plain block, then three of inline-cleared ones), and it reads
 * zero.
 */
static void inline_cleared_blocks_bias_their_cache(void)
{
	for (unsigned order = 0; order <= 1; order++) {
		struct zp_arena *a = t_arena(PAGES, 8, 0);
		size_t len = ZP_PAGE_SIZE << order;
		char *p;

		zp_test_tc_bias(4, 64);
		ASSERT((p = zp_alloc_pages(a, 0, order, ZP_USER_ADDR_NONE)));
		memset(p, 0x5a, len);
		ASSERT_EQ(zp_free_pages(a, p, order), 0);
		for (int i = 0; i < 3; i++) {
			char *q = zp_alloc_pages(a, ZP_GFP_ZERO, order, ZP_USER_ADDR_NONE);

			ASSERT(q);
			EXPECT_EQ(q, p); /* the block just freed, hot and dirty: the inline clear's */
			EXPECT(t_all_zero(q, len));
			EXPECT(!zp_test_tc_biased(a));
			memset(q, 0x5a, len);
			ASSERT_EQ(zp_free_pages(a, q, order), 0);
		}
		EXPECT(zp_test_tc_biased(a)); /* a block without its tag would not have counted */
		EXPECT_EQ(zp_free_pages(a, p, order), -EINVAL);
		zp_test_tc_bias(0, 0);
		EXPECT_EQ(zp_arena_check(a), 0);
		zp_arena_destroy(a);
	}
}

/*
 * The inline clears (page_alloc.c: alloc_zeroed_hot()) are on exactly
 * while their stores are the engine's choice and nothing watches clears:
 * clear_inline while the cached primitive is rep stosb, clear_inline_small
 * while the small one is the 32-byte stores; a clear hook or the aliasing
 * mode turns both off until it is undone.  And a block cleared on the
 * everyday path (inline where the flags allow) is cleared inside its
 * bounds: the blocks on either side keep their bytes (the sanitizers do
 * not see the inline clears' asm stores).
 */
static void inline_clear_flags_and_bounds(void)
{
	struct zp_arena *a = t_arena(PAGES, 8, 0);
	const bool stosb = !strcmp(zero_cached_name(), "rep_stosb"), vec = !strcmp(zero_small_name(), "vec_avx2");
	struct t_seen seen = {0};

	EXPECT_EQ(a->clear_inline, stosb);
	EXPECT_EQ(a->clear_inline_small, vec);
	zp_test_set_clear_hook(a, t_see, &seen);
	EXPECT(!a->clear_inline && !a->clear_inline_small);
	zp_test_set_clear_hook(a, NULL, NULL);
	EXPECT_EQ(a->clear_inline, stosb);
	EXPECT_EQ(a->clear_inline_small, vec);
	zp_test_set_aliasing(a, true);
	EXPECT(!a->clear_inline && !a->clear_inline_small);
	zp_test_set_aliasing(a, false);
	EXPECT_EQ(a->clear_inline, stosb);
	EXPECT_EQ(a->clear_inline_small, vec);

	for (unsigned order = 0; order <= 2; order++) {
		enum { N = 8 };
		size_t len = ZP_PAGE_SIZE << order;
		char *p[N], *mid = NULL, *q;

		for (int i = 0; i < N; i++) {
			ASSERT((p[i] = zp_alloc_pages(a, 0, order, ZP_USER_ADDR_NONE)));
			memset(p[i], 0x5a, len);
		}
		for (int i = 0; i < N && !mid; i++) { /* a block with both neighbours among them */
			bool below = false, above = false;

			for (int j = 0; j < N; j++) {
				below |= p[j] == p[i] - len;
				above |= p[j] == p[i] + len;
			}
			if (below && above)
				mid = p[i];
		}
		ASSERT(mid);
		ASSERT_EQ(zp_free_pages(a, mid, order), 0);
		q = zp_alloc_pages(a, ZP_GFP_ZERO, order, ZP_USER_ADDR_NONE);
		EXPECT_EQ(q, mid); /* hot, dirty, no address: the inline clear's where the flags allow */
		EXPECT(t_all_zero(mid, len));
		for (size_t k = 0; k < len; k++) {
			if (mid[-(ptrdiff_t)len + (ptrdiff_t)k] != 0x5a || mid[len + k] != 0x5a) {
				EXPECT(!"a neighbour's byte changed");
				break;
			}
		}
		for (int i = 0; i < N; i++)
			ASSERT_EQ(zp_free_pages(a, p[i], order), 0);
	}
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/*
 * A cache biases after its owner's first frees of its own blocks (4 here);
 * biased, a double or wrong-order free is still refused.  Another
 * thread's free of one of its blocks stops it once and unbiases it, and
 * the next such free needs no stop; the owner's double free of that block
 * is refused.  The wait to bias again is 4 times longer (16).
 */
static void bias_follows_the_frees(void)
{
	struct zp_arena *a = t_arena(PAGES, 8, 0);
	unsigned long settled;
	void *p[3];

	zp_test_tc_bias(4, 64);
	for (int i = 0; i < 4; i++) {
		EXPECT(!zp_test_tc_biased(a));
		ASSERT_EQ(own_pair(a, (unsigned)i & 3), 0);
	}
	EXPECT(zp_test_tc_biased(a));
	ASSERT_EQ(zp_arena_check(a), 0);
	for (unsigned o = 0; o <= 3; o++) {
		ASSERT((p[0] = zp_alloc_pages(a, 0, o, ZP_USER_ADDR_NONE)));
		EXPECT_EQ(zp_free_pages(a, p[0], o + 1), -EINVAL);
		EXPECT_EQ(zp_free_pages(a, p[0], o), 0);
		EXPECT_EQ(zp_free_pages(a, p[0], o), -EINVAL);
	}
	EXPECT(zp_test_tc_biased(a));
	ASSERT_EQ(zp_arena_check(a), 0);

	for (int i = 0; i < 3; i++)
		ASSERT((p[i] = zp_alloc_pages(a, 0, 1, ZP_USER_ADDR_NONE)));
	settled = zp_test_tc_bias_settled();
	EXPECT_EQ(free_in_thread(a, p[0], 1), 0);
	EXPECT_EQ(zp_test_tc_bias_settled(), settled + 1);
	EXPECT(!zp_test_tc_biased(a));
	EXPECT_EQ(free_in_thread(a, p[1], 1), 0);
	EXPECT_EQ(zp_test_tc_bias_settled(), settled + 1);
	EXPECT_EQ(zp_free_pages(a, p[0], 1), -EINVAL);
	EXPECT_EQ(free_in_thread(a, p[1], 1), -EINVAL);
	EXPECT_EQ(zp_free_pages(a, p[2], 1), 0); /* its own, unbiased: counts */
	ASSERT_EQ(zp_arena_check(a), 0);
	for (int i = 1; i < 16; i++) {
		EXPECT(!zp_test_tc_biased(a));
		ASSERT_EQ(own_pair(a, 0), 0);
	}
	EXPECT(zp_test_tc_biased(a));
	ASSERT_EQ(zp_arena_check(a), 0);

	/* a thread with no cache at all (its mapping refused) frees 8 of
	 * them through zp_free(): the first stops the cache, the others take
	 * a ticket from the pool and need no stop */
	{
		void *q[8];
		struct cacheless_frees f = {.a = a, .p = q, .n = 8};
		pthread_t t;
		int was, err;

		for (int i = 0; i < 8; i++)
			ASSERT((q[i] = zp_alloc_pages(a, 0, 2, ZP_USER_ADDR_NONE)));
		settled = zp_test_tc_bias_settled();
		was = zp_test_fail_private_maps(1 << 30);
		err = was ? -1 : pthread_create(&t, NULL, free_them_cacheless, &f);
		if (!err)
			pthread_join(t, NULL);
		zp_test_fail_private_maps(0); /* never left armed */
		ASSERT_EQ(was, 0);
		ASSERT_EQ(err, 0);
		EXPECT(f.cacheless);
		EXPECT_EQ(f.bad, 0);
		EXPECT_EQ(zp_test_tc_bias_settled(), settled + 1);
		EXPECT(!zp_test_tc_biased(a));
		for (int i = 0; i < 8; i++)
			EXPECT_EQ(zp_free(a, q[i]), -EINVAL);
	}
	ASSERT_EQ(zp_arena_check(a), 0);
	zp_test_tc_bias(0, 0);
	expect_all_obtainable(a, 8);
	zp_arena_destroy(a);
}

struct race {
	struct zp_arena *a;
	void *p;
	unsigned order;
	int ret;
	_Atomic int ready, go, started, done; /* round numbers */
	_Atomic bool quit;
	int rounds;
	bool cacheless;	 /* the other thread maps no cache (asked) */
	unsigned caches; /* the other thread's caches at its end (told) */
};

/* Spin until *@v == @want (or @quit): a yield now and then, so that the
 * two threads also meet on one CPU. */
static bool race_wait(_Atomic int *v, int want, _Atomic bool *quit)
{
	for (unsigned n = 1; atomic_load_explicit(v, memory_order_acquire) != want; n++) {
		if (quit && atomic_load_explicit(quit, memory_order_relaxed))
			return false;
		if (!(n & 1023))
			sched_yield();
	}
	return true;
}

/* A spin of 0 to 255 steps, so that the two frees meet at every offset. */
static void race_delay(uint32_t *rng)
{
	*rng ^= *rng << 13;
	*rng ^= *rng >> 17;
	*rng ^= *rng << 5;
	for (volatile uint32_t i = 0; i < (*rng & 255); i++)
		;
}

static void *race_helper(void *arg)
{
	struct race *r = arg;
	uint32_t rng = 0x9e3779b9u;

	if (!r->cacheless && own_pair(r->a, 0)) { /* its cache first */
		atomic_store_explicit(&r->quit, true, memory_order_relaxed);
		return NULL;
	}
	for (int round = 1; round <= r->rounds; round++) {
		atomic_store_explicit(&r->ready, round, memory_order_release);
		if (!race_wait(&r->go, round, &r->quit))
			break;
		atomic_store_explicit(&r->started, round, memory_order_release);
		race_delay(&rng);
		r->ret = zp_free_pages(r->a, r->p, r->order);
		atomic_store_explicit(&r->done, round, memory_order_release);
	}
	r->caches = zp_test_tc_thread_caches();
	return NULL;
}

/*
 * The owner and another thread race to free the same block, again and
 * again; exactly one of them wins every time and the arena stays whole.
 * Rounds 4k and 4k+1: the cache is biased as the race starts (the owner's
 * free is plain; the other thread stops the cache to claim).  Rounds 4k+2
 * and 4k+3: it biases during the race (the owner frees another block of
 * its own first, which biases it, then the raced one plainly; the other
 * thread's claim may see the mode change across its compare-and-swap, and
 * settle it with its ticket).  In odd rounds the owner waits until the
 * other thread has started, so that on a busy machine, where the two
 * seldom run at once, the other thread still goes first now and then.
 * Each free biases the cache again (a wait of one free).  @cacheless: the
 * other thread maps no cache (its tickets come from the pool).  20000
 * rounds at least, then more (up to 20 s) until each side has won 20
 * times; whether the frees really met at the same instant the machine
 * decides (an idle one: thousands of times), and a run where one side
 * never won says so.
 */
static void race_rounds(bool cacheless)
{
	struct zp_arena *a = t_arena(PAGES, 8, 0);
	struct race r = {.a = a, .rounds = 1 << 30, .cacheless = cacheless};
	int owner_won = 0, biased_at_start = 0, round, failed = t_cur_failed;
	unsigned long settled = zp_test_tc_bias_settled();
	uint32_t rng = 0x2545f491u;
	double t0 = t_now_s();
	bool broken = false;
	pthread_t t;

	ASSERT(a);
	zp_test_tc_bias(1, 1);
	if (own_pair(a, 0) || (cacheless && zp_test_fail_private_maps(1 << 30)) ||
	    pthread_create(&t, NULL, race_helper, &r)) {
		zp_test_fail_private_maps(0);
		zp_test_tc_bias(0, 0);
		T_REPORT("could not start the race");
		return;
	}
	for (round = 1;; round++) {
		unsigned order = (unsigned)round % 4;
		void *q = NULL;
		int mine;

		if (round > 20000 && ((owner_won >= 20 && round - 1 - owner_won >= 20) || t_now_s() - t0 > 20))
			break;
		if (round & 2)
			q = zp_alloc_pages(a, 0, 0, ZP_USER_ADDR_NONE);
		else if (!zp_test_tc_biased(a) && own_pair(a, 0))
			break;
		biased_at_start += zp_test_tc_biased(a);
		r.p = zp_alloc_pages(a, 0, order, ZP_USER_ADDR_NONE);
		if (!r.p || ((round & 2) && !q)) {
			T_REPORT("round %d: an allocation failed", round);
			break;
		}
		r.order = order;
		if (!race_wait(&r.ready, round, &r.quit))
			break;
		atomic_store_explicit(&r.go, round, memory_order_release);
		if (round & 1)
			race_wait(&r.started, round, NULL);
		race_delay(&rng);
		race_delay(&rng);
		if (q && zp_free_pages(a, q, 0)) {
			T_REPORT("round %d: the owner's free of its other block failed", round);
			break;
		}
		mine = zp_free_pages(a, r.p, order);
		race_wait(&r.done, round, NULL);
		if ((mine == 0) + (r.ret == 0) != 1 || mine + r.ret != -EINVAL) {
			T_REPORT("round %d: the owner's free returned %d, the other thread's %d", round, mine, r.ret);
			broken = true; /* a block in two places: nothing more to check */
			break;
		}
		owner_won += mine == 0;
		if (round % 2000 == 0 && zp_arena_check(a)) {
			T_REPORT("round %d: the checker failed", round);
			broken = true;
			break;
		}
	}
	atomic_store_explicit(&r.quit, true, memory_order_relaxed);
	pthread_join(t, NULL);
	zp_test_fail_private_maps(0);
	zp_test_tc_bias(0, 0);
	round--;
	T_NOTE("%s: %d rounds, the owner won %d, biased at the start of %d, %lu claims settled with the cache stopped",
	       cacheless ? "cacheless" : "with a cache", round, owner_won, biased_at_start,
	       zp_test_tc_bias_settled() - settled);
	if (broken || t_cur_failed > failed)
		return;
	EXPECT_EQ(r.caches, cacheless ? 0 : 1);
	EXPECT_GE(biased_at_start, round / 2);
	if (owner_won < 20 || round - owner_won < 20) /* a busy machine: said, not failed */
		T_DIAG("the frees met less than planned: the owner won %d of %d rounds", owner_won, round);
	EXPECT_EQ(zp_arena_check(a), 0);
	expect_all_obtainable(a, 8);
	zp_arena_destroy(a);
}

static void racing_frees_of_a_biased_cache(void)
{
	race_rounds(false);
	race_rounds(true);
}

/* Threads arrive and wait until the gate opens; its opener first waits
 * for a count of them (however many could be made). */
struct gate {
	pthread_mutex_t m;
	pthread_cond_t c;
	unsigned arrived;
	bool open;
};

static void gate_pass(struct gate *g)
{
	pthread_mutex_lock(&g->m);
	g->arrived++;
	pthread_cond_broadcast(&g->c);
	while (!g->open)
		pthread_cond_wait(&g->c, &g->m);
	pthread_mutex_unlock(&g->m);
}

static void gate_wait_for(struct gate *g, unsigned n)
{
	pthread_mutex_lock(&g->m);
	while (g->arrived < n)
		pthread_cond_wait(&g->c, &g->m);
	pthread_mutex_unlock(&g->m);
}

static void gate_open(struct gate *g)
{
	pthread_mutex_lock(&g->m);
	g->open = true;
	pthread_cond_broadcast(&g->c);
	pthread_mutex_unlock(&g->m);
}

struct biased_blocks {
	struct gate *gate; /* or the barriers */
	struct zp_arena *a;
	unsigned orders; /* 0 or 4: orders 0..3; 1: order 0 only */
	void *p[4];	 /* one block of each order, allocated after the cache biased */
	bool biased;
	pthread_barrier_t *ready, *go; /* NULL: exit at once */
};

/* Bias this thread's cache, allocate one block of each order; then wait
 * at the barriers, whatever happened (NULL when all went well). */
static void *bias_and_hold(void *arg)
{
	struct biased_blocks *b = arg;
	unsigned orders = b->orders ? b->orders : 4;
	void *ret = NULL;

	for (unsigned i = 0; i < 8 && !ret; i++)
		if (own_pair(b->a, i % orders))
			ret = (void *)1;
	for (unsigned o = 0; o < orders && !ret; o++)
		if (!(b->p[o] = zp_alloc_pages(b->a, 0, o, ZP_USER_ADDR_NONE)))
			ret = (void *)2;
	b->biased = zp_test_tc_biased(b->a);
	if (b->gate) {
		gate_pass(b->gate);
	} else if (b->ready) {
		pthread_barrier_wait(b->ready);
		pthread_barrier_wait(b->go);
	}
	return ret;
}

/*
 * A biased cache's thread exits with blocks of its still allocated: its
 * slot is free and even, so another thread frees them without a stop, and
 * frees them once only.  A new thread may take the slot; its blocks are
 * its own then.
 */
static void bias_outlives_its_thread(void)
{
	struct zp_arena *a = t_arena(PAGES, 8, 0);
	struct biased_blocks b = {.a = a}, c = {.a = a};
	unsigned long settled;
	pthread_t t;
	void *ret;

	zp_test_tc_bias(4, 0);
	ASSERT_EQ(own_pair(a, 0), 0); /* this thread's cache first */
	ASSERT_EQ(pthread_create(&t, NULL, bias_and_hold, &b), 0);
	pthread_join(t, &ret);
	ASSERT_EQ(ret, NULL);
	EXPECT(b.biased);
	ASSERT_EQ(zp_arena_check(a), 0);
	settled = zp_test_tc_bias_settled();
	for (unsigned o = 0; o < 4; o++) {
		EXPECT_EQ(zp_free_pages(a, b.p[o], o), 0);
		EXPECT_EQ(zp_free_pages(a, b.p[o], o), -EINVAL);
	}
	EXPECT_EQ(zp_test_tc_bias_settled(), settled);
	ASSERT_EQ(zp_arena_check(a), 0);

	ASSERT_EQ(pthread_create(&t, NULL, bias_and_hold, &c), 0); /* takes the slot again */
	pthread_join(t, &ret);
	ASSERT_EQ(ret, NULL);
	EXPECT(c.biased);
	for (unsigned o = 0; o < 4; o++)
		EXPECT_EQ(free_in_thread(a, c.p[o], o), 0);
	EXPECT_EQ(zp_test_tc_bias_settled(), settled);
	zp_test_tc_bias(0, 0);
	ASSERT_EQ(zp_arena_check(a), 0);
	expect_all_obtainable(a, 8);
	zp_arena_destroy(a);
}

/*
 * Fork with two biased caches, each holding an allocated block of its
 * own: in the child the forking thread's cache is still biased and frees
 * its block plainly; the other thread's slot was freed with its cache, so
 * its blocks are freed without a stop; each once.  The parent goes on.
 */
static void bias_across_fork(void)
{
	struct zp_arena *a = t_arena(PAGES, 8, 0);
	pthread_barrier_t ready, go;
	struct biased_blocks b = {.a = a, .ready = &ready, .go = &go}, m = {.a = a};
	pthread_t t;
	pid_t pid;

	zp_test_tc_bias(4, 0);
	pthread_barrier_init(&ready, NULL, 2);
	pthread_barrier_init(&go, NULL, 2);
	ASSERT_EQ(bias_and_hold(&m), NULL);
	EXPECT(m.biased);
	ASSERT_EQ(pthread_create(&t, NULL, bias_and_hold, &b), 0);
	pthread_barrier_wait(&ready);
	EXPECT(b.biased);
	pid = fork();
	if (pid == 0) {
		unsigned long settled = zp_test_tc_bias_settled();
		int bad = 0;

		bad |= !zp_test_tc_biased(a);
		for (unsigned o = 0; o < 4; o++) {
			bad |= zp_free_pages(a, m.p[o], o) != 0;
			bad |= zp_free_pages(a, b.p[o], o) != 0;
			bad |= zp_free_pages(a, b.p[o], o) != -EINVAL;
			bad |= zp_free_pages(a, m.p[o], o) != -EINVAL;
		}
		bad |= zp_test_tc_bias_settled() != settled;
		_exit(bad ? 1 : zp_arena_check(a) ? 2 : t_stats(a).nr_free != PAGES ? 3 : 0);
	}
	ASSERT(pid > 0);
	EXPECT_EQ(t_wait_child(pid), 0);
	pthread_barrier_wait(&go);
	pthread_join(t, NULL);
	for (unsigned o = 0; o < 4; o++) {
		EXPECT_EQ(zp_free_pages(a, m.p[o], o), 0);
		EXPECT_EQ(zp_free_pages(a, b.p[o], o), 0);
	}
	zp_test_tc_bias(0, 0);
	EXPECT_EQ(t_stats(a).nr_free, PAGES);
	EXPECT_EQ(zp_arena_check(a), 0);
	pthread_barrier_destroy(&ready);
	pthread_barrier_destroy(&go);
	zp_arena_destroy(a);
}

/*
 * More live caches than slots: the caches beyond the table's have no
 * slot, tag nothing and never bias; the others do.  Every slot is free
 * again once the threads are gone.
 */
static unsigned more_caches_made;

static void more_caches_than_slots_body(void)
{
	enum { N = TC_SLOTS + 8 };
	struct zp_arena *a = t_arena(32 * N, 8, 0); /* a refill and a block a thread */
	struct biased_blocks *b = calloc(N, sizeof(*b));
	pthread_t *t = calloc(N, sizeof(*t));
	struct gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, false};
	pthread_attr_t attr;
	unsigned used = 0, biased = 0, made = 0;

	ASSERT(b && t);
	zp_test_tc_bias(4, 0);
	ASSERT_EQ(own_pair(a, 0), 0); /* this thread's cache: one slot */
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 << 10);
	for (; made < N; made++) {
		b[made] = (struct biased_blocks){.gate = &g, .a = a, .orders = 1};
		if (pthread_create(&t[made], &attr, bias_and_hold, &b[made]))
			break;
	}
	gate_wait_for(&g, made);
	for (unsigned s = 1; s < TC_SLOTS; s++)
		used += a->tc_slot[s] != NULL;
	EXPECT_EQ(zp_arena_check(a), 0);
	gate_open(&g);
	for (unsigned i = 0; i < made; i++) {
		void *ret;

		pthread_join(t[i], &ret);
		EXPECT_EQ(ret, NULL);
		biased += b[i].biased;
		if (b[i].p[0])
			EXPECT_EQ(zp_free_pages(a, b[i].p[0], 0), 0);
	}
	pthread_attr_destroy(&attr);
	zp_test_tc_bias(0, 0);
	if (made == N) {
		EXPECT_EQ(used, TC_SLOTS - 1);
		EXPECT_EQ(biased, TC_SLOTS - 2); /* this thread has the other slot */
	}
	used = 0;
	for (unsigned s = 1; s < TC_SLOTS; s++)
		used += a->tc_slot[s] != NULL;
	EXPECT_EQ(used, 1);
	EXPECT_EQ(zp_arena_check(a), 0);
	free(b);
	free(t);
	zp_arena_destroy(a);
	more_caches_made = made;
}

/* zp_arena_check() refuses a broken bias: a mode that disagrees with its
 * cache, a free slot left odd, a tag on an exact allocation or beyond the
 * table; each undone, it passes again. */
/* The everyday paths' gates (internal.h, gates_update()) as the checker
 * proves them: each wrong value found, the right ones accepted again. */
static void checker_sees_wrong_gates(void)
{
	struct zp_arena *a = t_arena(PAGES, 8, 0), *v = t_arena(PAGES, 8, ZP_INIT_ON_FREE);
	unsigned n = a->tc_orders;

	ASSERT(n > 1);
	EXPECT_EQ(atomic_load(&a->fast_alloc_orders), n);
	EXPECT_EQ(atomic_load(&a->fast_free_orders), n);
	EXPECT_EQ(atomic_load(&v->fast_free_orders), 0); /* the free writes the block */
	EXPECT_EQ(atomic_load(&v->fast_alloc_orders), v->tc_orders);
	EXPECT_EQ(zp_arena_check(a), 0);
	EXPECT_EQ(zp_arena_check(v), 0);

	atomic_store(&a->fast_alloc_orders, n + 1); /* past the caches' lists */
	EXPECT_EQ(zp_arena_check(a), -EUCLEAN);
	atomic_store(&a->fast_alloc_orders, n - 1); /* shut for one order: left shut */
	EXPECT_EQ(zp_arena_check(a), -EUCLEAN);
	atomic_store(&a->fast_alloc_orders, n);
	atomic_store(&a->fast_free_orders, 0);
	EXPECT_EQ(zp_arena_check(a), -EUCLEAN);
	atomic_store(&a->fast_free_orders, n);
	atomic_store(&a->daemon_restart, true); /* a restart owed, the gates open */
	EXPECT_EQ(zp_arena_check(a), -EUCLEAN);
	atomic_store(&a->daemon_restart, false);
	EXPECT_EQ(zp_arena_check(a), 0);
	atomic_store(&v->fast_free_orders, v->tc_orders); /* open under init_on_free */
	EXPECT_EQ(zp_arena_check(v), -EUCLEAN);
	atomic_store(&v->fast_free_orders, 0);
	EXPECT_EQ(zp_arena_check(v), 0);

	zp_test_set_pcp(a, false); /* the switch moves the gates with tc_orders */
	EXPECT_EQ(atomic_load(&a->fast_alloc_orders), 0);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_test_set_pcp(a, true);
	EXPECT_EQ(atomic_load(&a->fast_free_orders), n);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(v);
	zp_arena_destroy(a);
}

static void checker_sees_a_broken_bias(void)
{
	struct zp_arena *a = t_arena(PAGES, 8, 0);
	struct tcache *t;
	unsigned slot;
	uint32_t info, pfn;
	void *p, *x;

	ASSERT_EQ(own_pair(a, 0), 0);
	ASSERT((t = tc_mine(a)) && t->tag);
	slot = t->tag >> PG_TAG_SHIFT;
	atomic_fetch_add(&a->tc_mode[slot], 1); /* odd, the cache not biased */
	EXPECT_EQ(zp_arena_check(a), -EUCLEAN);
	atomic_fetch_sub(&a->tc_mode[slot], 1);
	EXPECT_EQ(zp_arena_check(a), 0);
	atomic_fetch_add(&a->tc_mode[slot + 1], 1); /* a free slot, odd */
	EXPECT_EQ(zp_arena_check(a), -EUCLEAN);
	atomic_fetch_sub(&a->tc_mode[slot + 1], 1);
	EXPECT_EQ(zp_arena_check(a), 0);

	ASSERT((p = zp_alloc_pages(a, 0, 2, ZP_USER_ADDR_NONE)));
	pfn = (uint32_t)(((char *)p - (char *)a->base) >> ZP_PAGE_SHIFT);
	info = pg_info(&a->pages[pfn]);
	EXPECT_EQ(info >> PG_TAG_SHIFT, slot);
	pg_set_info(&a->pages[pfn], (info & ~PG_TAG_MASK) | (TC_SLOTS << PG_TAG_SHIFT)); /* beyond the table */
	EXPECT_EQ(zp_arena_check(a), -EUCLEAN);
	pg_set_info(&a->pages[pfn], info);
	EXPECT_EQ(zp_arena_check(a), 0);
	EXPECT_EQ(zp_free_pages(a, p, 2), 0);

	ASSERT((x = zp_alloc(a, 0, 3 * ZP_PAGE_SIZE, ZP_USER_ADDR_NONE))); /* exact: never tagged */
	pfn = (uint32_t)(((char *)x - (char *)a->base) >> ZP_PAGE_SHIFT);
	info = pg_info(&a->pages[pfn]);
	EXPECT_EQ(info >> PG_TAG_SHIFT, 0);
	pg_set_info(&a->pages[pfn], info | t->tag);
	EXPECT_EQ(zp_arena_check(a), -EUCLEAN);
	pg_set_info(&a->pages[pfn], info);
	EXPECT_EQ(zp_arena_check(a), 0);
	EXPECT_EQ(zp_free(a, x), 0);
	expect_all_obtainable(a, 8);
	zp_arena_destroy(a);
}

static void more_caches_than_slots_child(void)
{
	more_caches_than_slots_body();
	_exit(t_cur_failed ? 1 : more_caches_made < TC_SLOTS + 8 ? 77 : 0);
}

/* In a child of its own: a thousand threads leave ThreadSanitizer's state
 * large, which slows every later fork of this process. */
static void more_caches_than_slots(void)
{
	int st = t_in_child(more_caches_than_slots_child);

	if (st == 77)
		SKIP("fewer than %u threads could be made", TC_SLOTS + 8);
	EXPECT_EQ(st, 0);
}

/*
 * A thread whose cache cannot be mapped (mmap() fails: out of memory) works
 * on the buddy lists under the arena lock, every call, and not the slow
 * way (which would drain another thread's cache: one holds blocks
 * throughout and must keep them): allocations of every order the caches
 * serve (0-7 here), zeroing ones zero and counted, over blocks written and
 * freed in the second round; frees, a double free refused, errno left
 * alone by calls that succeed, the checker and the free count right.  One
 * mapping is tried: the lookups after a failure wait TC_MAP_BACKOFF before
 * the next try, which makes the cache once mapping works again.
 */
static void cache_not_mapped_uses_the_buddy_lists(void)
{
	struct zp_arena *a = t_arena(2 * PAGES, 8, 0); /* room for an order-7 block beside the rest */
	pthread_barrier_t ready, go;
	struct held h = {.a = a, .order = 0, .n = 16, .ready = &ready, .go = &go};
	const int many = 1 << 30;
	void *p[4][8], *q, *ret;
	size_t held_pages;
	pthread_t t;
	int was;

	ASSERT(tc_serves(a, 7) && !tc_serves(a, 8));
	pthread_barrier_init(&ready, NULL, 2);
	pthread_barrier_init(&go, NULL, 2);
	ASSERT_EQ(pthread_create(&t, NULL, cache_and_wait, &h), 0);
	pthread_barrier_wait(&ready);
	held_pages = cached_pages(a);
	EXPECT_GE(held_pages, 16);
	was = zp_test_fail_private_maps(many);
	if (was) { /* never leave it armed for the tests after this one */
		zp_test_fail_private_maps(0);
		ASSERT_EQ(was, 0);
	}
	for (int round = 0; round < 2; round++) {
		struct zp_stats s0 = t_stats(a), s1;
		uint64_t zeroing = 0;

		for (unsigned o = 0; o < 8; o++) {
			for (int i = 0; i < (o < 4 ? 8 : 1); i++) { /* orders 4-7 one at a time */
				size_t len = ZP_PAGE_SIZE << o;
				bool zero = o >= 4 || i % 2;
				void *b;

				errno = EDOM;
				b = zp_alloc_pages(a, zero ? ZP_GFP_ZERO : 0, o, ZP_USER_ADDR_NONE);
				if (!b) { /* leave nothing armed for the tests after this one */
					zp_test_fail_private_maps(0);
					tc_self.map_backoff = 0;
				}
				ASSERT(b);
				EXPECT_EQ(errno, EDOM);
				if (zero) {
					EXPECT(t_all_zero(b, len));
					zeroing += (uint64_t)1 << o;
				}
				memset(b, 0x77, len);
				if (o < 4) {
					p[o][i] = b;
				} else {
					errno = EDOM;
					EXPECT_EQ(zp_free_pages(a, b, o), 0);
					EXPECT_EQ(errno, EDOM);
				}
			}
		}
		EXPECT(tc_mine(a) == NULL);
		s1 = t_stats(a);
		EXPECT_EQ(s1.pages_cleared + s1.pages_clear_skipped - s0.pages_cleared - s0.pages_clear_skipped,
			  zeroing);
		if (round) /* pages the first round wrote and freed */
			EXPECT_GT(s1.pages_cleared - s0.pages_cleared, 0);
		for (unsigned o = 0; o < 4; o++) {
			for (int i = 0; i < 8; i++) {
				errno = EDOM;
				EXPECT_EQ(zp_free_pages(a, p[o][i], o), 0);
				EXPECT_EQ(errno, EDOM);
			}
		}
		EXPECT_EQ(zp_free_pages(a, p[0][0], 0), -EINVAL);
		EXPECT_EQ(cached_pages(a), held_pages); /* nothing went the slow way */
		EXPECT_EQ(zp_arena_check(a), 0);
		EXPECT_EQ(t_stats(a).nr_free, 2 * PAGES);
	}
	EXPECT_EQ(many - zp_test_fail_private_maps(0), 1); /* one try, then the backoff */
	int waited = 0;

	for (; waited < 2 * TC_MAP_BACKOFF && !tc_mine(a); waited++) {
		q = zp_alloc_pages(a, 0, 0, ZP_USER_ADDR_NONE);
		EXPECT(q != NULL);
		if (q)
			EXPECT_EQ(zp_free_pages(a, q, 0), 0);
	}
	EXPECT(tc_mine(a) != NULL);
	/* the wait was the backoff's: at most 3 lookups a pair, and the rounds
	 * made fewer than 400 */
	EXPECT_GE(waited, TC_MAP_BACKOFF / 5);
	pthread_barrier_wait(&go);
	pthread_join(t, &ret);
	EXPECT_EQ(ret, NULL);
	EXPECT_EQ(zp_arena_check(a), 0);
	for (int i = 0; i < 2; i++) /* every page obtainable: both max-order blocks */
		EXPECT((p[0][i] = zp_alloc_pages(a, 0, 8, ZP_USER_ADDR_NONE)) != NULL);
	EXPECT_EQ(t_stats(a).nr_free, 0);
	for (int i = 0; i < 2; i++)
		if (p[0][i])
			EXPECT_EQ(zp_free_pages(a, p[0][i], 8), 0);
	pthread_barrier_destroy(&ready);
	pthread_barrier_destroy(&go);
	zp_arena_destroy(a);
}

static void fallback_handshake_child(void)
{
	zp_test_tc_force_fences();
	if (strcmp(zp_test_tc_handshake(), "fences"))
		_exit(9);
	exhaustion_drains_other_threads();
	check_while_churning();
	bad_frees_of_cached_blocks();
	bias_follows_the_frees();
	racing_frees_of_a_biased_cache();
	_exit(t_cur_failed ? 1 : 0);
}

/* The fallback handshake (sequentially consistent fences, as where
 * membarrier is refused), forced in a child before any cache exists. */
static void fallback_handshake(void)
{
	EXPECT_EQ(t_in_child(fallback_handshake_child), 0);
}

int main(int argc, char **argv)
{
	t_init(argc, argv);
	RUN(fallback_handshake); /* first: no cache made in this process yet */
	T_NOTE("handshake in this build: %s", zp_test_tc_handshake());
	RUN(thread_exit_returns_cache);
	RUN(cross_thread_frees);
	RUN(exhaustion_drains_other_threads);
	RUN(bad_frees_of_cached_blocks);
	RUN(cache_not_mapped_uses_the_buddy_lists);
	RUN(bias_follows_the_frees);
	RUN(inline_cleared_blocks_bias_their_cache);
	RUN(inline_clear_flags_and_bounds);
	RUN(racing_frees_of_a_biased_cache);
	RUN(bias_outlives_its_thread);
	RUN(bias_across_fork);
	RUN(more_caches_than_slots);
	RUN(checker_sees_wrong_gates);
	RUN(checker_sees_a_broken_bias);
	RUN(cached_zero_state_across_threads);
	RUN(cached_zeroed_before_dirty);
	RUN(small_dirty_cached_block_cleared);
	RUN(hot_block_cleared_cached);
	RUN(refilled_block_cleared_cold);
	RUN(inline_clear_only_hot_full_no_address);
	RUN(hot_primitive_per_block);
	RUN(partial_cached_block);
	RUN(check_while_churning);
	RUN(destroy_with_live_caches);
	RUN(fork_returns_other_threads_caches);
	RUN(cancelled_quiescer_leaves_no_lock);
	RUN(first_call_in_a_handler_that_interrupted_malloc);
	RUN(handler_during_thread_exit);
	RUN(handler_during_fork);
	return t_done("test_tcache");
}
