/* SPDX-License-Identifier: MIT */
/*
 * Arena flags (init_on_alloc, init_on_free, verify) and the checker: the
 * checker must catch each kind of corruption it claims to prove.
 */
#include "test.h"

static void init_on_alloc_zeroes_plain_requests(void)
{
	struct zp_arena *a = t_arena(64, 4, ZP_INIT_ON_ALLOC);
	char *p = zp_alloc_pages(a, 0, 3, ZP_USER_ADDR_NONE);

	ASSERT(p);
	memset(p, 0x77, 8 * ZP_PAGE_SIZE);
	ASSERT_EQ(zp_free_pages(a, p, 3), 0);
	p = zp_alloc_pages(a, 0, 3, ZP_USER_ADDR_NONE); /* no ZP_GFP_ZERO */
	ASSERT(p);
	EXPECT(t_all_zero(p, 8 * ZP_PAGE_SIZE));
	EXPECT_EQ(t_stats(a).pages_cleared, 8);
	zp_arena_destroy(a);
}

static void init_on_free_clears_once_at_free(void)
{
	struct zp_arena *a = t_arena(64, 4, ZP_INIT_ON_FREE | ZP_INIT_ON_ALLOC);
	char *p = zp_alloc_pages(a, 0, 4, ZP_USER_ADDR_NONE);

	ASSERT(p);
	EXPECT_EQ(t_stats(a).pages_cleared, 0); /* fresh: OS-zeroed */
	memset(p, 0x77, 16 * ZP_PAGE_SIZE);
	ASSERT_EQ(zp_free_pages(a, p, 4), 0);
	EXPECT_EQ(t_stats(a).pages_cleared, 16);
	EXPECT(t_all_zero(p, 16 * ZP_PAGE_SIZE)); /* peek at free memory */
	EXPECT_EQ(t_stats(a).nr_free_zeroed, 16);
	p = zp_alloc_pages(a, ZP_GFP_ZERO, 4, 0x1000);
	ASSERT(p);
	EXPECT_EQ(t_stats(a).pages_cleared, 16); /* not again at allocation */
	EXPECT_EQ(t_stats(a).pages_clear_skipped, 32);
	zp_arena_destroy(a);
}

static void verify_poisons_and_catches_writes_after_free(void)
{
	struct zp_arena *a = t_arena(64, 4, ZP_VERIFY);
	char *p = zp_alloc_pages(a, 0, 4, ZP_USER_ADDR_NONE);

	ASSERT(p);
	ASSERT_EQ(zp_free_pages(a, p, 4), 0);
	EXPECT_EQ((unsigned char)p[0], 0xaa); /* poisoned */
	EXPECT_EQ((unsigned char)p[16 * ZP_PAGE_SIZE - 1], 0xaa);
	zp_arena_destroy(a);

	/* init_on_free + verify: a write after free into a zeroed page is caught
	 * at the next zeroing allocation, reported, counted, and cleared */
	a = t_arena(64, 4, ZP_VERIFY | ZP_INIT_ON_FREE);
	p = zp_alloc_pages(a, 0, 4, ZP_USER_ADDR_NONE);
	ASSERT(p);
	ASSERT_EQ(zp_free_pages(a, p, 4), 0);
	p[5 * ZP_PAGE_SIZE + 100] = 1; /* the use-after-free */
	T_DIAG("(a verify message about page 5 is expected here)");
	char *q = zp_alloc_pages(a, ZP_GFP_ZERO, 4, ZP_USER_ADDR_NONE);
	ASSERT(q == p);
	EXPECT_EQ(t_stats(a).verify_failures, 1);
	EXPECT(t_all_zero(q, 16 * ZP_PAGE_SIZE));
	EXPECT_EQ(t_stats(a).pages_cleared, 16 + 1);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/* Each corruption must make zp_arena_check() fail; undoing it must pass. */
static void checker_catches_corruption(void)
{
	struct zp_arena *a = t_arena(64, 4, 0);
	char *p = zp_alloc_pages(a, 0, 2, ZP_USER_ADDR_NONE);
	char *c = zp_alloc_pages(a, 0, 0, ZP_USER_ADDR_NONE);
	size_t ap = t_pfn(a, p), cp;
	uint32_t saved;

	char *big = zp_alloc_pages(a, 0, 4, ZP_USER_ADDR_NONE);

	ASSERT(p && c && big);
	ASSERT_EQ(zp_free_pages(a, c, 0), 0);	/* now in a per-CPU cache */
	ASSERT_EQ(zp_free_pages(a, big, 4), 0); /* on the buddy lists */
	cp = t_pfn(a, c);
	ASSERT_EQ(zp_arena_check(a), 0);
	T_DIAG("(eleven check failures are expected here)");

	/* a tail page claims to be a head */
	saved = pg_info(&a->pages[ap + 1]);
	pg_set_info(&a->pages[ap + 1], mk_info(PG_ALLOC, 0, 0));
	EXPECT_EQ(zp_arena_check(a), -EUCLEAN);
	pg_set_info(&a->pages[ap + 1], saved);

	/* an allocated block carries the cached blocks' PG_cold */
	saved = pg_info(&a->pages[ap]);
	pg_set_info(&a->pages[ap], saved | PG_COLD);
	EXPECT_EQ(zp_arena_check(a), -EUCLEAN);
	pg_set_info(&a->pages[ap], saved);
	EXPECT_EQ(zp_arena_check(a), 0);

	/* an allocated block carries PG_full, or a cached block all of whose
	 * pages are dirty lacks it (the inline allocation would not take it) */
	pg_set_info(&a->pages[ap], saved | PG_FULL);
	EXPECT_EQ(zp_arena_check(a), -EUCLEAN);
	pg_set_info(&a->pages[ap], saved);
	saved = pg_info(&a->pages[cp]);
	ASSERT((saved & PG_OWNER_MASK) == PG_CACHE && (saved & PG_FULL));
	pg_set_info(&a->pages[cp], saved & ~PG_FULL);
	EXPECT_EQ(zp_arena_check(a), -EUCLEAN);
	pg_set_info(&a->pages[cp], saved);
	EXPECT_EQ(zp_arena_check(a), 0);

	/* an allocated page claims to be zero */
	zs_mark_zeroed(a, ap + 2, 1);
	EXPECT_EQ(zp_arena_check(a), -EUCLEAN);
	zs_unzero(a, ap + 2);

	/* a cached dirty free page gains a zero bit behind the lists' back */
	ASSERT(!zs_test_zero(a, cp));
	zs_mark_zeroed(a, cp, 1);
	EXPECT_EQ(zp_arena_check(a), -EUCLEAN);
	zs_unzero(a, cp);

	/* a counter is off by one */
	a->cnt.pages++;
	EXPECT_EQ(zp_arena_check(a), -EUCLEAN);
	a->cnt.pages--;

	/* a list count is off */
	bool count_tested = false;

	for (unsigned o = 0; o <= 4 && !count_tested; o++) {
		for (int s = 0; s < NR_ZSTATES && !count_tested; s++) {
			if (a->free[o][s].nr) {
				a->free[o][s].nr++;
				EXPECT_EQ(zp_arena_check(a), -EUCLEAN);
				a->free[o][s].nr--;
				count_tested = true;
			}
		}
	}
	EXPECT(count_tested);

	/* a node of the summary tree inside a listed block goes stale (in an
	 * arena with blocks large enough to have nodes) */
	{
		struct zp_arena *b = t_arena(256, 8, 0);
		char *q = zp_alloc_pages(b, 0, 6, ZP_USER_ADDR_NONE);
		bool stale_tested = false;

		ASSERT(q);
		memset(q, 1, ZP_PAGE_SIZE << 6);
		ASSERT_EQ(zp_free_pages(b, q, 6), 0); /* merges into an order-8 block */
		for (unsigned o = NODE_MIN_ORDER; o <= 8 && !stale_tested; o++) {
			for (int s = 0; s < NR_ZSTATES && !stale_tested; s++) {
				uint32_t h = b->free[o][s].head;
				struct page *slot;

				if (h == NIL)
					continue;
				slot = &b->pages[h + (1u << (NODE_MIN_ORDER - 1)) - 1]; /* its first node */
				slot->next ^= 1;
				EXPECT_EQ(zp_arena_check(b), -EUCLEAN);
				slot->next ^= 1;
				stale_tested = true;
			}
		}
		EXPECT(stale_tested);
		EXPECT_EQ(zp_arena_check(b), 0);
		zp_arena_destroy(b);
	}

	/* never-used memory gains a zero-state bit, or a head */
	ASSERT(frontier_pages(a) > 0);
	zs_unzero(a, a->nr_pages - 1);
	EXPECT_EQ(zp_arena_check(a), -EUCLEAN);
	zs_mark_zeroed(a, a->nr_pages - 1, 1);
	pg_set_info(&a->pages[a->nr_pages - 1], mk_info(PG_ALLOC, 0, 0));
	EXPECT_EQ(zp_arena_check(a), -EUCLEAN);
	pg_set_info(&a->pages[a->nr_pages - 1], 0);

	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/*
 * PG_full on a cached block one page of which is zero or reported: the
 * block's list state (dirty) is still right, so only the PG_full rule can
 * see it, and the inline allocation would hand out that page as the
 * caller's without dropping its bit.
 */
static void checker_catches_full_with_clean_page(void)
{
	struct zp_arena *a = t_arena(64, 4, 0);
	char *p = zp_alloc_pages(a, 0, 1, ZP_USER_ADDR_NONE);
	size_t pfn;
	uint32_t info;

	ASSERT(p);
	memset(p, 1, 2 * ZP_PAGE_SIZE);
	ASSERT_EQ(zp_free_pages(a, p, 1), 0);
	pfn = t_pfn(a, p);
	info = pg_info(&a->pages[pfn]);
	ASSERT((info & PG_OWNER_MASK) == PG_CACHE && (info & PG_FULL) && pg_state(info) == ZS_DIRTY);
	EXPECT_EQ(zp_arena_check(a), 0);
	T_DIAG("(two check failures are expected here)");
	zs_mark_zeroed(a, pfn + 1, 1);
	EXPECT_EQ(zp_arena_check(a), -EUCLEAN);
	zs_unzero(a, pfn + 1);
	EXPECT_EQ(zp_arena_check(a), 0);
	zs_mark_reported(a, pfn + 1, 1, false);
	EXPECT_EQ(zp_arena_check(a), -EUCLEAN);
	zs_clear(a, pfn + 1, 1);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/* ZP_VERIFY poisons a block of an order the caches serve too (the inline
 * free must not take it), which is then listed dirty, PG_full. */
static void verify_poisons_cached_orders(void)
{
	struct zp_arena *a = t_arena(64, 4, ZP_VERIFY);

	ASSERT(a->tc_orders > 2);
	for (unsigned o = 0; o <= 2; o++) {
		char *p = zp_alloc_pages(a, 0, o, ZP_USER_ADDR_NONE);
		uint32_t info;

		ASSERT(p);
		memset(p, 0x11, ZP_PAGE_SIZE << o);
		ASSERT_EQ(zp_free_pages(a, p, o), 0);
		EXPECT_EQ((unsigned char)p[0], 0xaa);
		EXPECT_EQ((unsigned char)p[(ZP_PAGE_SIZE << o) - 1], 0xaa);
		info = pg_info(&a->pages[t_pfn(a, p)]);
		EXPECT((info & PG_OWNER_MASK) == PG_CACHE && (info & PG_FULL));
	}
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/* init_on_free at an order the caches serve: the block is listed zeroed,
 * without PG_full, and a non-zeroing request that takes it (the whole way)
 * drops its zero bits. */
static void init_on_free_cached_not_full(void)
{
	struct zp_arena *a = t_arena(64, 4, ZP_INIT_ON_FREE);
	char *p = zp_alloc_pages(a, 0, 1, ZP_USER_ADDR_NONE), *q;
	uint32_t info;

	ASSERT(p);
	memset(p, 0x11, 2 * ZP_PAGE_SIZE);
	ASSERT_EQ(zp_free_pages(a, p, 1), 0);
	info = pg_info(&a->pages[t_pfn(a, p)]);
	EXPECT((info & PG_OWNER_MASK) == PG_CACHE);
	EXPECT(!(info & PG_FULL));
	EXPECT_EQ(pg_state(info), ZS_ZEROED);
	EXPECT_EQ(zp_arena_check(a), 0);
	q = zp_alloc_pages(a, 0, 1, ZP_USER_ADDR_NONE);
	EXPECT(q == p);
	EXPECT_EQ(zp_arena_check(a), 0); /* allocated: no zero bit left */
	zp_arena_destroy(a);
}

int main(int argc, char **argv)
{
	t_init(argc, argv);
	RUN(init_on_alloc_zeroes_plain_requests);
	RUN(init_on_free_clears_once_at_free);
	RUN(verify_poisons_and_catches_writes_after_free);
	RUN(checker_catches_corruption);
	RUN(checker_catches_full_with_clean_page);
	RUN(verify_poisons_cached_orders);
	RUN(init_on_free_cached_not_full);
	return t_done("test_flags");
}
