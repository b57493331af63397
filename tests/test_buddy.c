/* SPDX-License-Identifier: MIT */
/*
 * Split, merge and state rules of the buddy lists.  The arenas here have
 * 16 pages and max_order 3 (two order-3 blocks), with the per-CPU caches
 * off so every block goes straight to the buddy lists.
 *
 * Legend for the diagrams:  R reported+zero,  Z zeroed (resident),
 * D dirty,  A allocated,  [ ] one free block,  . never used (free,
 * reported+zero, on no list until a request needs it).
 */
#include "test.h"

static struct zp_arena *small(unsigned flags)
{
	struct zp_arena *a = t_arena(16, 3, flags);

	zp_test_set_pcp(a, false);
	return a;
}

#define NFREE(a, o, s) zp_test_nr_free_blocks(a, o, s)

/*
 * fresh:  . . . . . . . . . . . . . . . .   (nothing listed: creation
 *                                            writes no metadata)
 */
static void fresh_arena_is_reported_and_zero(void)
{
	struct zp_arena *a = small(0);
	struct zp_stats s = t_stats(a);

	EXPECT_EQ(s.nr_pages, 16);
	EXPECT_EQ(s.nr_free, 16);
	EXPECT_EQ(s.nr_free_reported, 16);
	EXPECT_EQ(s.nr_free_zeroed, 0); /* resident zero pages only */
	EXPECT_EQ(NFREE(a, 3, ZS_REPORTED), 0);
	EXPECT_EQ(frontier_pages(a), 16);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/*
 * alloc order 0:  A [R] [R R] [R R R R]  . . . . . . . .
 *                 0  1   2-3    4-7          8-15
 * The first max-order block is listed from the never-used memory and
 * split; the second is still never used.
 */
static void split_leaves_one_block_per_order(void)
{
	struct zp_arena *a = small(0);
	char *p = zp_alloc_pages(a, 0, 0, ZP_USER_ADDR_NONE);

	ASSERT(p);
	EXPECT_EQ(t_pfn(a, p), 0);
	EXPECT_EQ(NFREE(a, 0, ZS_REPORTED), 1);
	EXPECT_EQ(NFREE(a, 1, ZS_REPORTED), 1);
	EXPECT_EQ(NFREE(a, 2, ZS_REPORTED), 1);
	EXPECT_EQ(NFREE(a, 3, ZS_REPORTED), 0);
	EXPECT_EQ(frontier_pages(a), 8);
	EXPECT_EQ(t_stats(a).nr_free, 15);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/*
 * write page 0 and free it:  [D R R R R R R R] . . . . . . . .
 * It merges all the way up; the merged block is partly dirty, listed as
 * dirty, and pages 1..7 keep their zeroed+reported bits.
 */
static void merge_keeps_per_page_state(void)
{
	struct zp_arena *a = small(0);
	char *p = zp_alloc_pages(a, 0, 0, ZP_USER_ADDR_NONE);

	ASSERT(p);
	memset(p, 0x11, ZP_PAGE_SIZE);
	EXPECT_EQ(zp_free_pages(a, p, 0), 0);
	EXPECT_EQ(NFREE(a, 3, ZS_DIRTY), 1);
	EXPECT_EQ(NFREE(a, 3, ZS_REPORTED), 0);
	EXPECT_EQ(frontier_pages(a), 8);
	EXPECT_EQ(NFREE(a, 0, ZS_REPORTED) + NFREE(a, 1, ZS_REPORTED) + NFREE(a, 2, ZS_REPORTED), 0);
	EXPECT(!zs_test_zero(a, 0));
	for (size_t i = 1; i < 8; i++)
		EXPECT(zs_test_zero(a, i) && zs_test_reported(a, i));
	EXPECT_EQ(t_stats(a).nr_free_reported, 15);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/*
 * [D D R R R R R R][R ...]: a zeroing order-3 allocation of the partly
 * dirty block clears exactly the 2 dirty pages and skips the 6 zero ones.
 */
static void zeroing_partly_dirty_clears_only_dirty(void)
{
	struct zp_arena *a = small(0);
	char *p = zp_alloc_pages(a, 0, 1, ZP_USER_ADDR_NONE);
	char *q;
	struct zp_stats s;

	ASSERT(p && t_pfn(a, p) == 0);
	memset(p, 0x22, 2 * ZP_PAGE_SIZE);
	ASSERT_EQ(zp_free_pages(a, p, 1), 0);
	q = zp_alloc_pages(a, ZP_GFP_ZERO, 3, ZP_USER_ADDR_NONE);
	ASSERT(q);
	EXPECT_EQ(t_pfn(a, q), 0); /* dirty before reported */
	EXPECT(t_all_zero(q, 8 * ZP_PAGE_SIZE));
	s = t_stats(a);
	EXPECT_EQ(s.pages_cleared, 2);
	EXPECT_EQ(s.pages_clear_skipped, 6);
	EXPECT_EQ(s.pages_refaulted, 2 + 6); /* the order-1 allocation's, then these */
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/*
 * Preference.  After: [D D D D D D D D][R R R R R R R R]
 *   non-zeroing order 3 -> the dirty block (pfn 0)
 *   zeroing order 3     -> the dirty block too (clear it) before reported
 * With init_on_free:  [Z Z Z Z Z Z Z Z][R ...]
 *   zeroing order 0     -> splits the zeroed block, clears nothing
 */
static void state_preference(void)
{
	struct zp_arena *a = small(0);
	char *p = zp_alloc_pages(a, 0, 3, ZP_USER_ADDR_NONE), *q;

	ASSERT(p && t_pfn(a, p) == 0);
	memset(p, 0x33, 8 * ZP_PAGE_SIZE);
	ASSERT_EQ(zp_free_pages(a, p, 3), 0);
	q = zp_alloc_pages(a, 0, 3, ZP_USER_ADDR_NONE);
	EXPECT_EQ(t_pfn(a, q), 0);
	ASSERT_EQ(zp_free_pages(a, q, 3), 0);
	q = zp_alloc_pages(a, ZP_GFP_ZERO, 3, ZP_USER_ADDR_NONE);
	EXPECT_EQ(t_pfn(a, q), 0);
	EXPECT_EQ(t_stats(a).pages_cleared, 8);
	EXPECT_EQ(t_stats(a).pages_refaulted, 8); /* the first allocation's */
	zp_arena_destroy(a);

	a = small(ZP_INIT_ON_FREE);
	p = zp_alloc_pages(a, 0, 3, ZP_USER_ADDR_NONE);
	ASSERT(p && t_pfn(a, p) == 0);
	memset(p, 0x33, 8 * ZP_PAGE_SIZE);
	ASSERT_EQ(zp_free_pages(a, p, 3), 0);
	EXPECT_EQ(NFREE(a, 3, ZS_ZEROED), 1);
	EXPECT_EQ(t_stats(a).nr_free_zeroed, 8);
	q = zp_alloc_pages(a, ZP_GFP_ZERO, 0, ZP_USER_ADDR_NONE);
	EXPECT(q && t_pfn(a, q) < 8);
	EXPECT_EQ(t_stats(a).pages_cleared, 8); /* only init_on_free's */
	EXPECT_EQ(t_stats(a).pages_clear_skipped, 1);
	EXPECT(t_all_zero(q, ZP_PAGE_SIZE));
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/*
 * Split keeps the half that suits the request; reported stays last.
 *   [D D D D R R R R]  (pages 0-3 written and freed, merged with 4-7)
 *   zeroing order 0     -> a dirty page (0..3): clearing a resident page
 *                          is cheaper than touching one given back to the OS
 *   non-zeroing order 0 -> a dirty page (0..3)
 * With init_on_free:
 *   [Z Z Z Z R R R R]
 *   zeroing and non-zeroing order 0 -> the resident zero half (0..3)
 */
static void split_keeps_better_half(void)
{
	struct zp_arena *a = small(0);
	char *p = zp_alloc_pages(a, 0, 2, ZP_USER_ADDR_NONE), *z, *d;

	ASSERT(p && t_pfn(a, p) == 0);
	ASSERT_EQ(zp_free_pages(a, p, 2), 0);
	ASSERT_EQ(NFREE(a, 3, ZS_DIRTY), 1);
	z = zp_alloc_pages(a, ZP_GFP_ZERO, 0, ZP_USER_ADDR_NONE);
	d = zp_alloc_pages(a, 0, 0, ZP_USER_ADDR_NONE);
	ASSERT(z && d);
	EXPECT(t_pfn(a, z) < 4);
	EXPECT(t_pfn(a, d) < 4);
	EXPECT_EQ(t_stats(a).pages_cleared, 1);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);

	a = small(ZP_INIT_ON_FREE);
	p = zp_alloc_pages(a, 0, 2, ZP_USER_ADDR_NONE);
	ASSERT(p && t_pfn(a, p) == 0);
	ASSERT_EQ(zp_free_pages(a, p, 2), 0);
	ASSERT_EQ(NFREE(a, 3, ZS_ZEROED), 1);
	z = zp_alloc_pages(a, ZP_GFP_ZERO, 0, ZP_USER_ADDR_NONE);
	d = zp_alloc_pages(a, 0, 0, ZP_USER_ADDR_NONE);
	ASSERT(z && d);
	EXPECT(t_pfn(a, z) < 4);
	EXPECT(t_pfn(a, d) < 4);
	EXPECT_EQ(t_stats(a).pages_cleared, 4);	  /* init_on_free's only */
	EXPECT_EQ(t_stats(a).pages_refaulted, 4); /* the first allocation's only */
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/* An arena whose size is not a multiple of the largest block: 13 pages =
 * [8][4][1] (listed from the never-used memory as requests need them), all
 * usable, and merging never crosses the end. */
static void odd_sized_arena(void)
{
	struct zp_arena *a = t_arena(13, 3, 0);
	void *p[13];
	size_t n = 0;

	zp_test_set_pcp(a, false);
	EXPECT_EQ(frontier_pages(a), 13);
	while (n < 13 && (p[n] = zp_alloc_pages(a, ZP_GFP_ZERO, 0, ZP_USER_ADDR_NONE)))
		n++;
	EXPECT_EQ(n, 13);
	EXPECT(!zp_alloc_pages(a, 0, 0, ZP_USER_ADDR_NONE) && errno == ENOMEM);
	for (size_t i = 0; i < n; i++)
		EXPECT_EQ(zp_free_pages(a, p[i], 0), 0);
	EXPECT_EQ(NFREE(a, 3, ZS_DIRTY), 1);
	EXPECT_EQ(NFREE(a, 2, ZS_DIRTY), 1);
	EXPECT_EQ(NFREE(a, 0, ZS_DIRTY), 1);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/* The caches keep zero state: a zeroed page freed to a cache is handed to
 * the next zeroing request without a clear. */
static void pcp_keeps_zero_state(void)
{
	struct zp_arena *a = t_arena(64, 5, ZP_INIT_ON_FREE);
	char *p = zp_alloc_pages(a, ZP_GFP_ZERO, 0, ZP_USER_ADDR_NONE);
	uint64_t cleared;

	ASSERT(p);
	memset(p, 0x44, ZP_PAGE_SIZE);
	ASSERT_EQ(zp_free_pages(a, p, 0), 0); /* cleared once, at free */
	cleared = t_stats(a).pages_cleared;
	EXPECT_EQ(cleared, 1);
	EXPECT_EQ(t_stats(a).nr_free_zeroed, 1);
	for (int i = 0; i < 4; i++) {
		char *q = zp_alloc_pages(a, ZP_GFP_ZERO, 0, ZP_USER_ADDR_NONE);

		ASSERT(q);
		EXPECT(t_all_zero(q, ZP_PAGE_SIZE));
		ASSERT_EQ(zp_free_pages(a, q, 0), 0);
	}
	EXPECT_EQ(zp_arena_check(a), 0);
	/* 4 frees cleared 4 pages; no allocation cleared anything */
	EXPECT_EQ(t_stats(a).pages_cleared, cleared + 4);
	zp_arena_destroy(a);
}

/* The merges owed, at every order. */
static size_t nr_owed(struct zp_arena *a)
{
	size_t n = 0;

	for (unsigned o = 0; o < NR_ORDERS; o++)
		n += a->owed[o] != NIL;
	return n;
}

/* Free blocks of @o in every state. */
static size_t nfree_all(struct zp_arena *a, unsigned o)
{
	return NFREE(a, o, ZS_ZEROED) + NFREE(a, o, ZS_DIRTY) + NFREE(a, o, ZS_REPORTED);
}

/* A request for the whole order-12 arena @a: every merge owed is made, the
 * block is page 0, and nothing is owed after; then @a is destroyed. */
static void whole_arena_back(struct zp_arena *a)
{
	char *q = zp_alloc_pages(a, 0, 12, ZP_USER_ADDR_NONE);

	EXPECT(q && t_pfn(a, q) == 0);
	EXPECT_EQ(nr_owed(a), 0);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/*
 * Merges from order 9 (PAGEBLOCK_ORDER) up wait, one pair per order, until
 * another pair forms there or a request needs them, so a small split and
 * merge costs the same at any max_order.
 * 4096 pages, max_order 12:
 *   alloc order 0:  A [1][2] ... [256][512 @512][1024][2048]
 *   free it:        [512 @0][512 @512][1024][2048]   merges stop at order 9:
 *                                                    one merge owed
 *   alloc order 9:  one of the pair, nothing owed; freed, owed again
 *   alloc order 12: the pair merges, and on up: [4096 @0] whole
 * The checker holds the owed merges to the listed pairs.
 */
static void merges_wait_above_pageblock(void)
{
	struct zp_arena *a = t_arena(4096, 12, 0);
	char *p, *q;

	zp_test_set_pcp(a, false);
	EXPECT_EQ(a->merge_order, 9);
	p = zp_alloc_pages(a, 0, 0, ZP_USER_ADDR_NONE);
	ASSERT(p && t_pfn(a, p) == 0);
	ASSERT_EQ(zp_free_pages(a, p, 0), 0);
	for (unsigned o = 0; o < 9; o++)
		EXPECT_EQ(nfree_all(a, o), 0);
	EXPECT_EQ(nfree_all(a, 9), 2);
	EXPECT_EQ(nfree_all(a, 10), 1);
	EXPECT_EQ(nfree_all(a, 11), 1);
	EXPECT_EQ(nfree_all(a, 12), 0);
	EXPECT_EQ(a->owed[9], 0);
	EXPECT_EQ(nr_owed(a), 1);
	EXPECT_EQ(zp_arena_check(a), 0);

	T_NOTE("(two check failures are expected here)");
	a->owed[9] = NIL; /* a merge forgotten */
	EXPECT(zp_arena_check(a) != 0);
	a->owed[9] = 0;
	a->owed[10] = 1024; /* a merge owed where no pair is */
	EXPECT(zp_arena_check(a) != 0);
	a->owed[10] = NIL;
	EXPECT_EQ(zp_arena_check(a), 0);

	q = zp_alloc_pages(a, 0, 9, ZP_USER_ADDR_NONE); /* no merge for it */
	ASSERT(q && t_pfn(a, q) % 512 == 0 && t_pfn(a, q) < 1024);
	EXPECT_EQ(nfree_all(a, 9), 1);
	EXPECT_EQ(nfree_all(a, 10), 1);
	EXPECT_EQ(nr_owed(a), 0); /* the pair parted: nothing owed */
	EXPECT_EQ(zp_arena_check(a), 0);
	ASSERT_EQ(zp_free_pages(a, q, 9), 0);
	EXPECT_EQ(nfree_all(a, 9), 2);
	EXPECT_EQ(a->owed[9], 0);

	p = zp_alloc_pages(a, 0, 12, ZP_USER_ADDR_NONE);
	ASSERT(p && t_pfn(a, p) == 0);
	EXPECT_EQ(nr_owed(a), 0);
	for (unsigned o = 0; o <= 12; o++)
		EXPECT_EQ(nfree_all(a, o), 0);
	EXPECT_EQ(t_stats(a).nr_free, 0);
	EXPECT_EQ(frontier_pages(a), 0);
	EXPECT_EQ(zp_arena_check(a), 0);
	ASSERT_EQ(zp_free_pages(a, p, 12), 0);
	EXPECT_EQ(nfree_all(a, 12), 1);
	EXPECT_EQ(nr_owed(a), 0); /* no buddy at max_order */
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/* merge_order: 9, or report_order if larger (a block a pass reports still
 * forms at a free), or max_order if smaller. */
static void merge_order_follows_report_order(void)
{
	struct zp_config c = {.size = 4096 * ZP_PAGE_SIZE, .max_order = 12, .report_order = 10};
	struct zp_arena *a = zp_arena_create(&c);
	char *x, *y;

	ASSERT(a);
	zp_test_set_pcp(a, false);
	EXPECT_EQ(a->merge_order, 10);
	x = zp_alloc_pages(a, 0, 9, ZP_USER_ADDR_NONE);
	y = zp_alloc_pages(a, 0, 9, ZP_USER_ADDR_NONE);
	ASSERT(x && y && t_pfn(a, x) == 0 && t_pfn(a, y) == 512);
	ASSERT_EQ(zp_free_pages(a, x, 9), 0);
	ASSERT_EQ(zp_free_pages(a, y, 9), 0);
	EXPECT_EQ(nfree_all(a, 9), 0); /* merged at once, to order 10 */
	EXPECT_EQ(nfree_all(a, 10), 2);
	EXPECT_EQ(a->owed[10], 0); /* and there it waits */
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);

	a = t_arena(4096, 8, 0);
	EXPECT_EQ(a->merge_order, 8);
	zp_arena_destroy(a);
}

/*
 * At most one merge is owed per order: a second pair forming there makes
 * the first merge at once, as eager merging would have, so the newest
 * merged block heads its list; and a request makes the merges owed below
 * its order, one per order.  Eight order-9 blocks, freed pair by pair:
 *   free 0, 512:      owed[9] = 0
 *   free 2048, 2560:  0 merges (order 10 @0); owed[9] = 2048
 *   order 10:         2048 merges and is handed out (the newest)
 *   free it; free 1024, 1536 (owed[9] = 1024), 3072, 3584: 1024 merges,
 *   beside 0: owed[10] = 0; owed[9] = 3072
 *   order 12:         3072, then the pairs at 10 and 11: [4096 @0]
 */
static void merge_on_demand_merges_every_pair(void)
{
	struct zp_arena *a = t_arena(4096, 12, 0);
	char *p[8], *q;

	zp_test_set_pcp(a, false);
	for (int i = 0; i < 8; i++)
		ASSERT((p[i] = zp_alloc_pages(a, 0, 9, ZP_USER_ADDR_NONE)) && t_pfn(a, p[i]) == (size_t)i * 512);
	for (int i = 0; i < 2; i++)
		ASSERT_EQ(zp_free_pages(a, p[i], 9), 0);
	EXPECT_EQ(a->owed[9], 0);
	for (int i = 4; i < 6; i++)
		ASSERT_EQ(zp_free_pages(a, p[i], 9), 0);
	EXPECT_EQ(a->owed[9], 2048);
	EXPECT_EQ(nfree_all(a, 10), 1); /* the older pair, merged */
	EXPECT_EQ(nr_owed(a), 1);
	EXPECT_EQ(zp_arena_check(a), 0);
	q = zp_alloc_pages(a, 0, 10, ZP_USER_ADDR_NONE);
	EXPECT(q && t_pfn(a, q) == 2048); /* the newest pair's */
	EXPECT_EQ(nfree_all(a, 10), 1);
	EXPECT_EQ(nr_owed(a), 0);
	EXPECT_EQ(zp_arena_check(a), 0);
	ASSERT_EQ(zp_free_pages(a, q, 10), 0);
	EXPECT_EQ(zp_arena_check(a), 0);

	for (int i = 2; i < 4; i++)
		ASSERT_EQ(zp_free_pages(a, p[i], 9), 0);
	EXPECT_EQ(a->owed[9], 1024);
	for (int i = 6; i < 8; i++)
		ASSERT_EQ(zp_free_pages(a, p[i], 9), 0);
	EXPECT_EQ(a->owed[9], 3072);
	EXPECT_EQ(a->owed[10], 0);
	EXPECT_EQ(nr_owed(a), 2);
	EXPECT_EQ(zp_arena_check(a), 0);
	whole_arena_back(a);
}

/*
 * A request makes only the merges owed below its order: an order-9
 * request makes none (any block of order 9 or more serves it), an order-10
 * request the one at order 9, not the one at order 10.
 */
static void merge_on_demand_only_below_the_request(void)
{
	struct zp_arena *a = t_arena(4096, 12, 0);
	char *p[4], *q;

	zp_test_set_pcp(a, false);
	for (int i = 0; i < 4; i++) /* 0, 512, 1024 (order 10), 2048 (order 10) */
		ASSERT((p[i] = zp_alloc_pages(a, 0, i < 2 ? 9 : 10, ZP_USER_ADDR_NONE)));
	ASSERT(t_pfn(a, p[2]) == 1024 && t_pfn(a, p[3]) == 2048);
	ASSERT_EQ(zp_free_pages(a, p[3], 10), 0); /* beside the fresh 3072: owed[10] */
	ASSERT_EQ(zp_free_pages(a, p[0], 9), 0);
	ASSERT_EQ(zp_free_pages(a, p[1], 9), 0); /* owed[9] */
	EXPECT_EQ(a->owed[9], 0);
	EXPECT_EQ(a->owed[10], 2048);
	q = zp_alloc_pages(a, 0, 9, ZP_USER_ADDR_NONE);
	ASSERT(q && t_pfn(a, q) < 1024);
	EXPECT_EQ(a->owed[10], 2048);
	EXPECT_EQ(nfree_all(a, 11), 0);
	ASSERT_EQ(zp_free_pages(a, q, 9), 0);
	q = zp_alloc_pages(a, 0, 10, ZP_USER_ADDR_NONE);
	EXPECT(q && t_pfn(a, q) == 0); /* the order-9 pair, merged */
	EXPECT_EQ(a->owed[10], 2048);
	EXPECT_EQ(nfree_all(a, 11), 0);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/*
 * A request above order 9 merges first, so it sees what eager merging
 * would have shown it: two zeroed order-9 buddies make the zeroed order-10
 * block a zeroing request prefers to a dirty one.
 *   X Y at 0 and 512, F at 1024 (order 10, kept), D at 2048 (order 10),
 *   all written; free X and Y, pre-zero them; free D:
 *     [Z 512 @0][Z 512 @512] F [D 1024 @2048][R 1024 @3072]
 *   zeroing order 10 -> page 0, nothing cleared (D would need 1024 pages)
 */
static void merge_on_demand_keeps_zero_preference(void)
{
	struct zp_arena *a = t_arena(4096, 12, 0);
	char *x, *y, *f, *d, *q;
	struct zp_stats s0;

	zp_test_set_pcp(a, false);
	x = zp_alloc_pages(a, 0, 9, ZP_USER_ADDR_NONE);
	y = zp_alloc_pages(a, 0, 9, ZP_USER_ADDR_NONE);
	f = zp_alloc_pages(a, 0, 10, ZP_USER_ADDR_NONE);
	d = zp_alloc_pages(a, 0, 10, ZP_USER_ADDR_NONE);
	ASSERT(x && y && f && d);
	ASSERT(t_pfn(a, x) == 0 && t_pfn(a, y) == 512 && t_pfn(a, f) == 1024 && t_pfn(a, d) == 2048);
	memset(x, 1, ZP_PAGE_SIZE << 9);
	memset(y, 2, ZP_PAGE_SIZE << 9);
	memset(d, 3, ZP_PAGE_SIZE << 10);
	ASSERT_EQ(zp_free_pages(a, x, 9), 0);
	ASSERT_EQ(zp_free_pages(a, y, 9), 0);
	EXPECT_EQ(zp_arena_prezero(a, 4u << 20), 1024);
	EXPECT_EQ(NFREE(a, 9, ZS_ZEROED), 2);
	ASSERT_EQ(zp_free_pages(a, d, 10), 0);
	EXPECT_EQ(NFREE(a, 10, ZS_DIRTY), 1);
	EXPECT_EQ(a->owed[9], 0);    /* X and Y */
	EXPECT_EQ(a->owed[10], 2048); /* D and the fresh block beside it */
	EXPECT_EQ(zp_arena_check(a), 0);
	s0 = t_stats(a);
	q = zp_alloc_pages(a, ZP_GFP_ZERO, 10, ZP_USER_ADDR_NONE);
	ASSERT(q);
	EXPECT_EQ(t_pfn(a, q), 0);
	EXPECT_EQ(t_stats(a).pages_cleared - s0.pages_cleared, 0);
	EXPECT_EQ(t_stats(a).pages_clear_skipped - s0.pages_clear_skipped, 1024);
	EXPECT(t_all_zero(q, ZP_PAGE_SIZE << 10));
	EXPECT_EQ(NFREE(a, 10, ZS_DIRTY), 1); /* D, its merge still owed */
	EXPECT_EQ(nr_owed(a), 1);
	EXPECT_EQ(zp_arena_check(a), 0);
	ASSERT_EQ(zp_free_pages(a, f, 10), 0);
	zp_arena_destroy(a);
}

/* The slow path's drain leaves pairs apart too: its retry merges them. */
static void merge_on_demand_after_drain(void)
{
	struct zp_arena *a = t_arena(4096, 12, 0); /* the caches on */
	char *p = zp_alloc_pages(a, 0, 0, ZP_USER_ADDR_NONE);

	ASSERT(p);
	ASSERT_EQ(zp_free_pages(a, p, 0), 0); /* into this thread's cache */
	whole_arena_back(a);
}

/*
 * Metadata costs memory only where pages are used: a 1 TiB arena is
 * created without writing its descriptors or bitmaps, and using a corner
 * of it faults in a corner of them.  (Its speed is zpage-bench scale's.)
 */
static void huge_arena_metadata_is_lazy(void)
{
	struct zp_config c = {.size = (size_t)1 << 40, .max_order = 10};
	long r0 = t_rss_kib(), r1, r2;
	struct zp_arena *a = zp_arena_create(&c);
	void *p[64];
	size_t used = 0;

	if (!a && errno == ENOMEM)
		SKIP("this system cannot reserve 1 TiB of address space");
	ASSERT(a);
	r1 = t_rss_kib();
	for (int i = 0; i < 64; i++) {
		ASSERT((p[i] = zp_alloc_pages(a, ZP_GFP_ZERO, (unsigned)(i % 11), ZP_USER_ADDR_NONE)));
		used += (size_t)1 << (i % 11);
	}
	for (int i = 0; i < 64; i++)
		EXPECT_EQ(zp_free_pages(a, p[i], (unsigned)(i % 11)), 0);
	r2 = t_rss_kib();
	T_NOTE("1 TiB arena: RSS +%ld KiB at creation, +%ld KiB after 64 allocations", r1 - r0, r2 - r0);
	EXPECT_LT(r1 - r0, 1024);     /* 3.3 GB of metadata, none of it touched */
	EXPECT_EQ(t_stats(a).nr_free, (size_t)1 << 28);
	EXPECT_EQ(t_stats(a).nr_free_reported, ((size_t)1 << 28) - used); /* all but what was used */
	zp_arena_destroy(a);
}

int main(int argc, char **argv)
{
	t_init(argc, argv);
	RUN(fresh_arena_is_reported_and_zero);
	RUN(split_leaves_one_block_per_order);
	RUN(merge_keeps_per_page_state);
	RUN(zeroing_partly_dirty_clears_only_dirty);
	RUN(state_preference);
	RUN(split_keeps_better_half);
	RUN(odd_sized_arena);
	RUN(pcp_keeps_zero_state);
	RUN(merges_wait_above_pageblock);
	RUN(merge_order_follows_report_order);
	RUN(merge_on_demand_merges_every_pair);
	RUN(merge_on_demand_only_below_the_request);
	RUN(merge_on_demand_keeps_zero_preference);
	RUN(merge_on_demand_after_drain);
	RUN(huge_arena_metadata_is_lazy);
	return t_done("test_buddy");
}
