/* SPDX-License-Identifier: MIT */
/*
 * Warmth (clear.c): a dirty block given back to the buddy lists a moment
 * ago is cleared with cached stores, one that has been free longer with
 * the general order (far runs non-temporal).  A fake clock makes "a moment
 * ago" exact, and a hook sees each clear.  Asserted:
 *   - a block freed and taken back within the warm time is cleared cached
 *     whole, with or without a user address (the target page last); at
 *     exactly the warm time still warm, one stamp unit later cold; with
 *     warmth off cold; across the stamps' 16-bit wrap still warm;
 *   - split halves keep their parent's stamp, upper or lower half, and so
 *     do the halves a pre-zero pass splits off; a merge keeps the oldest
 *     stamp of the parts with pages to clear (three parts), and a part
 *     whose pages read zero (never used, or pre-zeroed) does not count;
 *   - a small block (below clear_nt_min) takes the last stamp read, not
 *     the clock's time and not none;
 *   - a pass's put-back (MADV_FREE: pages still dirty), a quiescer's
 *     drain of a thread's cache and a forked child's put-back of the
 *     parent's other threads' caches leave no stamp; the owner's drain of
 *     a block it freed into its cache, one;
 *   - a refill: a warm block comes out hot (cached, whatever its size), a
 *     cold one PG_cold;
 *   - exact-size allocations: a warm block is cleared cached, and the
 *     excess a trim gives back keeps the block's warmth (none when the
 *     request did not zero and so did not look), and so does what
 *     zp_grow_in_place() gives back past the grown allocation;
 *   - the owner's overflow drain stamps the blocks it freed into its cache
 *     and not those a refill brought (PG_cold);
 *   - a block larger than half the last-level cache is never warm, nor
 *     are the parts split off it;
 *   - the checker refuses a stamp outside the buddy lists.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

struct clk {
	uint64_t ns;
};

static uint64_t fake_now(void *ctx)
{
	return ((struct clk *)ctx)->ns;
}

#define UNIT	 ((uint64_t)4096) /* a stamp unit, ns */
#define WARM_U	 244		  /* warm for 244 units (~1 ms) */
#define WARM_NS	 (WARM_U * UNIT)
#define CLK_BASE (((uint64_t)1 << 40) + 7 * UNIT) /* a stamp of 7, not 0 */

/* An arena whose warmth runs on @c, warm for WARM_NS. */
static struct zp_arena *warm_arena(size_t pages, unsigned max_order, struct clk *c)
{
	struct zp_arena *a = t_arena(pages, max_order, 0);

	c->ns = CLK_BASE;
	zp_test_set_warm_clock(a, fake_now, c);
	zp_test_set_warm_ns(a, WARM_NS);
	EXPECT_EQ(a->warm_units, WARM_U);
	a->warm_max_order = max_order; /* whatever this machine's cache: the cap has its own test */
	return a;
}

/* A dirty block of @order, freed at the clock's time; its address. */
static char *dirty_freed(struct zp_arena *a, unsigned order)
{
	char *p = zp_alloc_pages(a, 0, order, ZP_USER_ADDR_NONE);

	if (!p)
		return NULL;
	memset(p, 0x3c, ZP_PAGE_SIZE << order);
	if (zp_free_pages(a, p, order))
		return NULL;
	return p;
}

/* Take a zeroing block of @order (at @ua) and say how it was cleared. */
static char *zalloc_seen(struct zp_arena *a, unsigned order, uintptr_t ua, struct t_seen *s)
{
	char *q;

	memset(s, 0, sizeof(*s));
	zp_test_set_clear_hook(a, t_see, s);
	q = zp_alloc_pages(a, ZP_GFP_ZERO, order, ua);
	zp_test_set_clear_hook(a, NULL, NULL);
	if (q && !t_all_zero(q, ZP_PAGE_SIZE << order))
		T_REPORT("order %u block at %p does not read zero", order, (void *)q);
	return q;
}

/* Order 9 (2 MiB, above clear_nt_min, on the buddy lists): warm within the
 * warm time, with and without a user address, and at its edge; cold one
 * unit after it, or with warmth off.  What the block holds is the same
 * every time. */
static void warm_then_cold(void)
{
	struct clk c;
	struct zp_arena *a = warm_arena(2048, 10, &c);
	const unsigned order = 9;
	const size_t n = (size_t)1 << order, tpage = 300;
	uintptr_t ua = (uintptr_t)0x7f0000000000 + tpage * ZP_PAGE_SIZE + 9;

	ASSERT(!tc_serves(a, order));
	for (int k = 0; k < 5; k++) {
		struct t_seen s;
		char *p = dirty_freed(a, order), *q;
		bool with_ua = k == 1;

		ASSERT(p);
		if (k == 2)
			c.ns += WARM_NS; /* the edge: still warm */
		if (k == 3)
			c.ns += WARM_NS + UNIT; /* one stamp unit past it */
		if (k == 4)
			zp_test_set_warm_ns(a, 0);
		q = zalloc_seen(a, order, with_ua ? ua : ZP_USER_ADDR_NONE, &s);
		ASSERT(q);
		EXPECT_EQ(q, p);
		EXPECT_EQ(s.pages, n);
		if (k <= 2) {
			EXPECT_EQ(s.nt_pages, 0);
			if (with_ua) { /* two cached clears: (t, n), then [0, t] */
				EXPECT_EQ(s.n, 2);
				EXPECT_EQ(s.last_pfn, t_pfn(a, q));
				EXPECT_EQ(s.last_n, tpage + 1);
			} else {
				EXPECT_EQ(s.n, 1);
			}
		} else {
			EXPECT_EQ(s.nt_pages, n);
		}
		EXPECT_EQ(s.hot_pages, 0); /* "hot" is the caches' exception, not this */
		ASSERT_EQ(zp_free_pages(a, q, order), 0);
		EXPECT_EQ(zp_arena_check(a), 0);
	}
	zp_arena_destroy(a);
}

/* Split halves keep the stamp: a warm order-10 block split by an order-9
 * zeroing request gives two warm halves.  A merge keeps the older stamp: an
 * order-9 block freed long ago merged with its buddy freed now gives a
 * cold order-10 block; both freed now, a warm one. */
static void split_and_merge(void)
{
	struct clk c;
	struct zp_arena *a = warm_arena(1024, 10, &c);
	struct t_seen s;
	char *p, *q, *r;

	/* split */
	p = dirty_freed(a, 10);
	ASSERT(p);
	q = zalloc_seen(a, 9, ZP_USER_ADDR_NONE, &s);
	ASSERT(q);
	EXPECT_EQ(s.pages, 512);
	EXPECT_EQ(s.nt_pages, 0);
	r = zalloc_seen(a, 9, ZP_USER_ADDR_NONE, &s);
	ASSERT(r);
	EXPECT_EQ(s.pages, 512);
	EXPECT_EQ(s.nt_pages, 0);
	EXPECT_EQ(zp_arena_check(a), 0);

	/* merge: q freed long ago, r now */
	memset(q, 1, 2 << 20);
	memset(r, 1, 2 << 20);
	ASSERT_EQ(zp_free_pages(a, q, 9), 0);
	c.ns += 4 * WARM_NS;
	ASSERT_EQ(zp_free_pages(a, r, 9), 0);
	EXPECT_EQ(zp_arena_check(a), 0);
	p = zalloc_seen(a, 10, ZP_USER_ADDR_NONE, &s);
	ASSERT(p);
	EXPECT_EQ(s.pages, 1024);
	EXPECT_EQ(s.nt_pages, 1024);
	memset(p, 1, 4 << 20);
	ASSERT_EQ(zp_free_pages(a, p, 10), 0);

	/* and both now */
	q = zp_alloc_pages(a, 0, 9, ZP_USER_ADDR_NONE);
	r = zp_alloc_pages(a, 0, 9, ZP_USER_ADDR_NONE);
	ASSERT(q && r);
	c.ns += 4 * WARM_NS;
	ASSERT_EQ(zp_free_pages(a, q, 9), 0);
	ASSERT_EQ(zp_free_pages(a, r, 9), 0);
	p = zalloc_seen(a, 10, ZP_USER_ADDR_NONE, &s);
	ASSERT(p);
	EXPECT_EQ(s.pages, 1024);
	EXPECT_EQ(s.nt_pages, 0);
	ASSERT_EQ(zp_free_pages(a, p, 10), 0);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/* Never-used memory needs no clear; a block a pre-zero pass cleared and
 * put back carries no stamp, whatever it merged into. */
static void never_used_and_passes_not_warm(void)
{
	struct clk c;
	struct zp_arena *a = warm_arena(1024, 10, &c);
	struct t_seen s;
	char *p = zalloc_seen(a, 9, ZP_USER_ADDR_NONE, &s);

	ASSERT(p);
	EXPECT_EQ(s.pages, 0); /* fresh: nothing to clear */
	memset(p, 7, 2 << 20);
	ASSERT_EQ(zp_free_pages(a, p, 9), 0);
	EXPECT(zp_arena_prezero(a, 2 << 20) > 0); /* the pass clears it and puts it back */
	EXPECT_EQ(zp_arena_check(a), 0);
	for (size_t pfn = t_pfn(a, p), i = 0; i < 512; i++)
		ASSERT(zs_test_zero(a, pfn + i));
	/* the pass's put-back left no stamp on whatever the block merged into */
	for (unsigned o = 0; o <= 10; o++)
		for (int st = 0; st < NR_ZSTATES; st++)
			for (uint32_t b = a->free[o][st].head; b != NIL; b = a->pages[b].next)
				if (b <= t_pfn(a, p) && t_pfn(a, p) < b + ((size_t)1 << o))
					EXPECT_EQ(pg_stamp(pg_info(&a->pages[b])), 0);
	zp_arena_destroy(a);
}

/* A block larger than half the last-level cache (here set to order 8) is
 * never warm: not when freed, not the parts split off it, not when two warm
 * halves merge into it; the largest warm order is. */
static void too_large_never_warm(void)
{
	struct clk c;
	struct zp_arena *a = warm_arena(2048, 10, &c);
	struct t_seen s;
	char *p, *q, *r;

	zp_test_set_pcp(a, false); /* order 8 on the buddy lists too */
	a->warm_max_order = 8;
	p = dirty_freed(a, 8);
	ASSERT(p);
	q = zalloc_seen(a, 8, ZP_USER_ADDR_NONE, &s);
	EXPECT_EQ(q, p);
	EXPECT_EQ(s.pages, 256);
	EXPECT_EQ(s.nt_pages, 0);
	ASSERT_EQ(zp_free_pages(a, q, 8), 0);
	p = dirty_freed(a, 9);
	ASSERT(p);
	q = zalloc_seen(a, 9, ZP_USER_ADDR_NONE, &s);
	EXPECT_EQ(q, p);
	EXPECT_EQ(s.nt_pages, 512);
	memset(q, 2, 2 << 20);
	ASSERT_EQ(zp_free_pages(a, q, 9), 0);
	q = zalloc_seen(a, 8, ZP_USER_ADDR_NONE, &s); /* split off it */
	EXPECT_EQ(q, p);
	EXPECT_EQ(s.nt_pages, 256);
	r = zp_alloc_pages(a, 0, 8, ZP_USER_ADDR_NONE); /* its buddy */
	EXPECT_EQ(r, p + (1 << 20));
	memset(q, 2, 1 << 20);
	memset(r, 2, 1 << 20);
	ASSERT_EQ(zp_free_pages(a, q, 8), 0);
	ASSERT_EQ(zp_free_pages(a, r, 8), 0); /* two warm halves make a block too large */
	q = zalloc_seen(a, 9, ZP_USER_ADDR_NONE, &s);
	EXPECT_EQ(q, p);
	EXPECT_EQ(s.nt_pages, 512);
	ASSERT_EQ(zp_free_pages(a, q, 9), 0);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/* A report pass with MADV_FREE leaves the pages dirty (the OS may keep
 * them) and puts the block back without a stamp: a zeroing request right
 * after clears them as cold ones. */
static void reported_block_not_warm(void)
{
	struct clk c;
	struct zp_arena *a = t_arena(512, 9, ZP_REPORT_MADV_FREE);
	struct t_seen s;
	char *p, *q;

	c.ns = CLK_BASE;
	zp_test_set_warm_clock(a, fake_now, &c);
	zp_test_set_warm_ns(a, WARM_NS);
	p = dirty_freed(a, 9);
	ASSERT(p);
	EXPECT(zp_arena_report(a) > 0);
	q = zalloc_seen(a, 9, ZP_USER_ADDR_NONE, &s);
	EXPECT_EQ(q, p);
	EXPECT_EQ(s.pages, 512);
	EXPECT_EQ(s.nt_pages, 512);
	ASSERT_EQ(zp_free_pages(a, q, 9), 0);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/* A refill of a thread's cache.  Five dirty order-8 blocks (1 MiB, above
 * clear_nt_min) freed into the cache overflow it, and its owner drains the
 * two oldest to the buddy lists: warm.  Three zeroing allocations take the
 * three still cached (hot), the fourth refills and gets a drained one, hot
 * too when taken at once, PG_cold and its runs non-temporal after the warm
 * time.  A quiescer's drain (zp_test_drain_pcp(): what the slow path,
 * thread exit and fork do) leaves no stamp: cold at once. */
static void refill_warm_is_hot(void)
{
	for (int k = 0; k < 3; k++) {
		struct clk c;
		struct zp_arena *a = warm_arena(2048, 10, &c);
		const unsigned order = 8;
		char *p[5], *q;
		struct t_seen s;
		bool cold = k > 0;

		ASSERT(tc_serves(a, order));
		for (int i = 0; i < 5; i++) {
			p[i] = zp_alloc_pages(a, 0, order, ZP_USER_ADDR_NONE);
			ASSERT(p[i]);
			memset(p[i], 0x11, 1 << 20);
		}
		for (int i = 0; i < 5; i++)
			ASSERT_EQ(zp_free_pages(a, p[i], order), 0);
		if (k == 2)
			zp_test_drain_pcp(a);
		for (int i = 0; i < 3 && k < 2; i++) {
			q = zalloc_seen(a, order, ZP_USER_ADDR_NONE, &s);
			ASSERT(q);
			EXPECT_EQ(s.hot_pages, 256);
		}
		if (k == 1)
			c.ns += WARM_NS + UNIT;
		q = zalloc_seen(a, order, ZP_USER_ADDR_NONE, &s);
		ASSERT(q);
		EXPECT(q == p[0] || q == p[1] || k == 2);
		EXPECT_EQ(s.pages, 256);
		EXPECT_EQ(s.nt_pages, cold ? 256 : 0);
		EXPECT_EQ(s.hot_pages, cold ? 0 : 256);
		EXPECT_EQ(zp_arena_check(a), 0);
		zp_arena_destroy(a);
	}
}

/* The stamps' 16 bits wrap every 2^16 units: a block freed just before a
 * wrap and taken just after is as warm as its age says. */
static void warm_across_the_wrap(void)
{
	struct clk c;
	struct zp_arena *a = warm_arena(1024, 10, &c);
	struct t_seen s;
	char *p, *q;

	c.ns = ((uint64_t)1 << 40) + 0xfff0 * UNIT; /* stamp 0xfff0 */
	p = dirty_freed(a, 9);
	ASSERT(p);
	EXPECT_EQ(pg_stamp(pg_info(&a->pages[t_pfn(a, p)])), 0xfff0);
	c.ns += 100 * UNIT; /* stamp 0x54 */
	q = zalloc_seen(a, 9, ZP_USER_ADDR_NONE, &s);
	EXPECT_EQ(q, p);
	EXPECT_EQ(s.pages, 512);
	EXPECT_EQ(s.nt_pages, 0);
	ASSERT_EQ(zp_free_pages(a, q, 9), 0);
	zp_arena_destroy(a);
}

/* A merge of three parts with pages to clear keeps the oldest stamp,
 * whether it is the first buddy met or the last.  Caches off, so order-8
 * blocks go straight to the buddy lists.  B2 is freed at t0; B0 and B1 at
 * t0 + 150 units (they merge); B3 at t0 + 270 merges with B2, then with
 * B0+B1: stamp t0, cold (B0+B1's stamp would say warm).  Mirrored: B0+B1
 * at t0, B2 at t0 + 150. */
static void merge_keeps_oldest_of_three(void)
{
	for (int mirror = 0; mirror < 2; mirror++) {
		struct clk c;
		struct zp_arena *a = warm_arena(1024, 10, &c);
		struct t_seen s;
		char *b[4], *q;

		zp_test_set_pcp(a, false);
		for (int i = 0; i < 4; i++) {
			b[i] = zp_alloc_pages(a, 0, 8, ZP_USER_ADDR_NONE);
			ASSERT(b[i]);
			memset(b[i], 3, 1 << 20);
		}
		/* the four quarters of the one order-10 block, in address order */
		for (int i = 0; i < 3; i++)
			ASSERT(b[i + 1] == b[i] + (1 << 20));
		if (!mirror) { /* the oldest part is the first buddy B3 meets */
			ASSERT_EQ(zp_free_pages(a, b[2], 8), 0);
			c.ns += 150 * UNIT;
			ASSERT_EQ(zp_free_pages(a, b[0], 8), 0);
			ASSERT_EQ(zp_free_pages(a, b[1], 8), 0);
		} else { /* the last: B0+B1 at t0, B2 at t0 + 150 units */
			ASSERT_EQ(zp_free_pages(a, b[0], 8), 0);
			ASSERT_EQ(zp_free_pages(a, b[1], 8), 0);
			c.ns += 150 * UNIT;
			ASSERT_EQ(zp_free_pages(a, b[2], 8), 0);
		}
		c.ns += 120 * UNIT; /* 270 units after the oldest part, 120 after the newest */
		ASSERT_EQ(zp_free_pages(a, b[3], 8), 0);
		q = zalloc_seen(a, 10, ZP_USER_ADDR_NONE, &s);
		ASSERT(q);
		EXPECT_EQ(s.pages, 1024);
		EXPECT_EQ(s.nt_pages, 1024);
		ASSERT_EQ(zp_free_pages(a, q, 10), 0);
		EXPECT_EQ(zp_arena_check(a), 0);
		zp_arena_destroy(a);
	}
}

/* The lower half of a split keeps the stamp too: an order-10 block whose
 * upper half a pre-zero pass cleared (no pages to clear, so its stamp does
 * not count in the merge) and whose lower half was freed now; a zeroing
 * order-9 request keeps the zeroed upper half and lists the lower one,
 * which the next takes warm.  And the halves a pre-zero pass splits off
 * keep the stamp of the block it split. */
static void lower_half_and_prezero_split(void)
{
	struct clk c;
	struct zp_arena *a = warm_arena(1024, 10, &c);
	struct t_seen s;
	char *lo, *hi, *q;

	lo = zp_alloc_pages(a, 0, 9, ZP_USER_ADDR_NONE);
	hi = zp_alloc_pages(a, 0, 9, ZP_USER_ADDR_NONE);
	ASSERT(lo && hi);
	if (lo > hi) {
		char *t = lo;

		lo = hi;
		hi = t;
	}
	memset(lo, 4, 2 << 20);
	memset(hi, 4, 2 << 20);
	ASSERT_EQ(zp_free_pages(a, hi, 9), 0);
	EXPECT(zp_arena_prezero(a, 2 << 20) > 0); /* hi: cleared, put back without a stamp */
	c.ns += 10 * WARM_NS;
	ASSERT_EQ(zp_free_pages(a, lo, 9), 0); /* merges with hi: the stamp is lo's */
	q = zalloc_seen(a, 9, ZP_USER_ADDR_NONE, &s);
	EXPECT_EQ(q, hi);
	EXPECT_EQ(s.pages, 0);
	q = zalloc_seen(a, 9, ZP_USER_ADDR_NONE, &s);
	EXPECT_EQ(q, lo);
	EXPECT_EQ(s.pages, 512);
	EXPECT_EQ(s.nt_pages, 0);
	memset(lo, 5, 2 << 20);
	memset(hi, 5, 2 << 20);
	ASSERT_EQ(zp_free_pages(a, lo, 9), 0);
	ASSERT_EQ(zp_free_pages(a, hi, 9), 0); /* one warm dirty order-10 block */
	EXPECT(zp_arena_prezero(a, 2 << 20) > 0); /* splits it: clears one half, lists the other */
	EXPECT_EQ(zp_arena_check(a), 0);
	q = zalloc_seen(a, 10, ZP_USER_ADDR_NONE, &s); /* merged again: half of it to clear, warm */
	ASSERT(q);
	EXPECT_EQ(s.pages, 512);
	EXPECT_EQ(s.nt_pages, 0);
	ASSERT_EQ(zp_free_pages(a, q, 10), 0);
	zp_arena_destroy(a);
}

/* A small block (order 5, below clear_nt_min) does not read the clock: it
 * takes the last stamp read.  Caches off.  At t0 an order-10 block is freed
 * (the clock is read: t0) and taken back; A (order 5) is freed at t0 + 100
 * units, its buddy B at t0 + 200, which reads the clock for the order-6
 * block they make: stamp min(t0 + 200, A's).  A zeroing order-10 request
 * takes the other order-10 block (all but their 64 pages fresh) at t0 + 230: warm (A's stamp is t0, not
 * none); at t0 + 260: cold (A's stamp is t0, not t0 + 100). */
static void small_blocks_take_last_stamp(void)
{
	for (int late = 0; late < 2; late++) {
		struct clk c;
		struct zp_arena *a = warm_arena(2048, 10, &c);
		struct t_seen s;
		char *x, *ba, *bb, *q;

		zp_test_set_pcp(a, false);
		x = zp_alloc_pages(a, 0, 10, ZP_USER_ADDR_NONE); /* one order-10 block */
		ba = zp_alloc_pages(a, 0, 5, ZP_USER_ADDR_NONE); /* and two buddies in the other */
		bb = zp_alloc_pages(a, 0, 5, ZP_USER_ADDR_NONE);
		ASSERT(ba && bb && x);
		ASSERT(bb == ba + (128 << 10));
		memset(ba, 6, 128 << 10);
		memset(bb, 6, 128 << 10);
		memset(x, 6, 4 << 20);
		ASSERT_EQ(zp_free_pages(a, x, 10), 0); /* the clock: t0 */
		ASSERT(zp_alloc_pages(a, 0, 10, ZP_USER_ADDR_NONE) == x);
		c.ns += 100 * UNIT;
		ASSERT_EQ(zp_free_pages(a, ba, 5), 0);
		c.ns += 100 * UNIT;
		ASSERT_EQ(zp_free_pages(a, bb, 5), 0);
		c.ns += (late ? 60 : 30) * UNIT;
		q = zalloc_seen(a, 10, ZP_USER_ADDR_NONE, &s);
		ASSERT(q);
		EXPECT_EQ(s.pages, 64);
		EXPECT_EQ(s.nt_pages, late ? 64 : 0);
		EXPECT_EQ(zp_arena_check(a), 0);
		zp_arena_destroy(a);
	}
}

/* Exact-size allocations (zp_alloc): a 3 MiB zeroing request that takes a
 * warm 4 MiB block clears its 768 pages cached, and the 1 MiB it gives back
 * keeps the warmth; a non-zeroing request does not look, and what it gives
 * back has none.  A freed exact allocation larger than the warm range
 * (here 2 MiB) leaves its pieces no stamp. */
static void exact_allocations(void)
{
	for (int zero = 1; zero >= 0; zero--) {
		struct clk c;
		struct zp_arena *a = warm_arena(1024, 10, &c);
		struct t_seen s;
		char *p = dirty_freed(a, 10), *q;

		ASSERT(p);
		zp_test_set_pcp(a, false); /* the excess's order 8 on the buddy lists */
		memset(&s, 0, sizeof(s));
		zp_test_set_clear_hook(a, t_see, &s);
		q = zp_alloc(a, zero ? ZP_GFP_ZERO : 0, 3 << 20, ZP_USER_ADDR_NONE);
		zp_test_set_clear_hook(a, NULL, NULL);
		EXPECT_EQ(q, p);
		EXPECT_EQ(s.pages, zero ? 768 : 0);
		EXPECT_EQ(s.nt_pages, 0);
		q = zalloc_seen(a, 8, ZP_USER_ADDR_NONE, &s); /* the excess */
		EXPECT_EQ(q, p + (3 << 20));
		EXPECT_EQ(s.pages, 256);
		EXPECT_EQ(s.nt_pages, zero ? 0 : 256);
		ASSERT_EQ(zp_free_pages(a, q, 8), 0);
		if (zero) {
			a->warm_max_order = 9;
			memset(p, 7, 3 << 20);
			ASSERT_EQ(zp_free(a, p), 0); /* 3 MiB: pieces of 2 and 1 MiB, no stamp */
			/* order-9 merges wait for a larger request: first the
			 * 1 MiB piece merged with the excess (listed last),
			 * then the 2 MiB piece; neither has a stamp */
			q = zalloc_seen(a, 9, ZP_USER_ADDR_NONE, &s);
			EXPECT_EQ(q, p + (2 << 20));
			EXPECT_EQ(s.pages, 512);
			EXPECT_EQ(s.nt_pages, 512);
			q = zalloc_seen(a, 9, ZP_USER_ADDR_NONE, &s);
			EXPECT_EQ(q, p);
			EXPECT_EQ(s.pages, 512);
			EXPECT_EQ(s.nt_pages, 512);
		}
		EXPECT_EQ(zp_arena_check(a), 0);
		zp_arena_destroy(a);
	}
}

/*
 * A free that stops at merge_order (9) reads the clock when a later merge
 * may make its block large enough to be judged warm: with warm_min_order
 * 11 (the drop-in's 16 MiB non-temporal threshold gives 12), a dirty
 * order-10 block freed beside its never-written buddy, a moment later
 * merged by a zeroing order-11 request, is warm: cleared cached.
 */
static void warm_across_a_merge_owed(void)
{
	struct clk c;
	struct zp_arena *a = warm_arena(4096, 12, &c);
	struct t_seen s;
	char *x, *q;

	a->warm_min_order = 11;
	zp_test_set_pcp(a, false);
	x = zp_alloc_pages(a, 0, 10, ZP_USER_ADDR_NONE); /* 0; 1024 stays free and fresh */
	ASSERT(x && t_pfn(a, x) == 0);
	memset(x, 5, ZP_PAGE_SIZE << 10);
	c.ns += 300 * UNIT; /* the last stamp read is old now */
	ASSERT_EQ(zp_free_pages(a, x, 10), 0);
	EXPECT_EQ(a->owed[10], 0);
	q = zalloc_seen(a, 11, ZP_USER_ADDR_NONE, &s);
	ASSERT(q && t_pfn(a, q) == 0);
	EXPECT_EQ(s.pages, 1024);
	EXPECT_EQ(s.nt_pages, 0);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/* The stamp of the buddy-list block that holds @pfn, or -1 when none does. */
static int stamp_at(struct zp_arena *a, size_t pfn)
{
	for (unsigned o = 0; o <= a->max_order; o++)
		for (int st = 0; st < NR_ZSTATES; st++)
			for (uint32_t b = a->free[o][st].head; b != NIL; b = a->pages[b].next)
				if (b <= pfn && pfn < b + ((size_t)1 << o))
					return pg_stamp(pg_info(&a->pages[b]));
	return -1;
}

/*
 * zp_grow_in_place() gives back what lies past the grown allocation with
 * the warmth of the piece it took that from: a 3 MiB exact allocation
 * leaves a 1 MiB piece, warm when the request zeroed (and so looked),
 * without a stamp when it did not; growing to 3.5 MiB half the warm time
 * later takes that piece and gives back its upper 512 KiB with the piece's
 * stamp (not the time of the grow), which a zeroing request then clears
 * cached or non-temporally to match.
 */
static void grow_in_place_keeps_warmth(void)
{
	for (int zero = 1; zero >= 0; zero--) {
		struct clk c;
		struct zp_arena *a = warm_arena(1024, 10, &c);
		struct t_seen s;
		char *p = dirty_freed(a, 10), *q;
		int piece;

		ASSERT(p);
		zp_test_set_pcp(a, false); /* the order-7 request below: from the buddy lists */
		q = zp_alloc(a, zero ? ZP_GFP_ZERO : 0, 3 << 20, ZP_USER_ADDR_NONE);
		ASSERT(q == p);
		piece = stamp_at(a, t_pfn(a, p) + 768);
		if (zero)
			EXPECT(piece > 0);
		else
			EXPECT_EQ(piece, 0);
		c.ns += WARM_NS / 2;
		ASSERT_EQ(zp_grow_in_place(a, p, (7 << 20) / 2), 0);
		EXPECT_EQ(stamp_at(a, t_pfn(a, p) + 896), piece);
		EXPECT_EQ(zp_arena_check(a), 0);
		q = zalloc_seen(a, 7, ZP_USER_ADDR_NONE, &s); /* the 512 KiB given back */
		EXPECT(q == p + (7 << 20) / 2);
		EXPECT_EQ(s.pages, 128);
		EXPECT_EQ(s.nt_pages, zero ? 0 : 128);
		EXPECT_EQ(zp_arena_check(a), 0);
		zp_arena_destroy(a);
	}
}

/*
 * The owner's overflow drain stamps the blocks it freed into its cache,
 * and leaves no stamp on the ones a refill brought (PG_cold), which it
 * never wrote: two cold order-2 blocks sit at the tail of the cache's
 * dirty list while this thread frees warm ones in front of them until the
 * cache overflows; the drain gives back the two cold blocks first, then
 * the oldest warm ones.  The cold blocks' buddies are allocated, so they
 * do not merge (the first two warm ones merge with each other).
 */
static void owner_drain_leaves_cold_unstamped(void)
{
	struct clk c;
	struct zp_arena *a = warm_arena(4096, 10, &c);
	const size_t nw = (TC_HIGH_PAGES / 4) + 4; /* enough frees to overflow the cache */
	char *b[6], *w[TC_HIGH_PAGES / 4 + 4];

	a->warm_min_order = 0; /* order 2 stamped like a large block */
	zp_test_set_pcp(a, false);
	for (int i = 0; i < 6; i++) {
		b[i] = zp_alloc_pages(a, 0, 2, ZP_USER_ADDR_NONE);
		ASSERT(b[i]);
		memset(b[i], 0x5a, 4 * ZP_PAGE_SIZE);
	}
	for (size_t i = 0; i < nw; i++) {
		w[i] = zp_alloc_pages(a, 0, 2, ZP_USER_ADDR_NONE);
		ASSERT(w[i]);
	}
	for (int i = 0; i < 6; i += 2) /* b[1], b[3], b[5] stay allocated */
		ASSERT_EQ(zp_free_pages(a, b[i], 2), 0);
	zp_test_set_pcp(a, true);
	ASSERT(tc_serves(a, 2));
	/* a refill brings the three dirty blocks, cold; the request takes one */
	_Static_assert(TC_BATCH_PAGES >> 2 >= 3, "a refill of order 2 brings the three");
	ASSERT(zp_alloc_pages(a, 0, 2, ZP_USER_ADDR_NONE));
	ASSERT(tc_mine(a));
	ASSERT_EQ(tc_mine(a)->lists[2][ZS_DIRTY].nr, 2);
	for (uint32_t pfn = tc_mine(a)->lists[2][ZS_DIRTY].head; pfn != NIL; pfn = a->pages[pfn].next)
		ASSERT(pg_info(&a->pages[pfn]) & PG_COLD);
	/* warm blocks in front of them, freed here, until the cache overflows
	 * (and drains from its list's tail: the cold ones first) */
	for (size_t i = 0; i < nw; i++)
		ASSERT_EQ(zp_free_pages(a, w[i], 2), 0);
	ASSERT(tc_mine(a)->lists[2][ZS_DIRTY].nr < nw + 2); /* it drained */
	for (int i = 0; i < 6; i += 2) {
		uint32_t info = pg_info(&a->pages[t_pfn(a, b[i])]);

		if ((info & PG_OWNER_MASK) == PG_ALLOC)
			continue; /* the one the request took */
		EXPECT_EQ(info & PG_OWNER_MASK, PG_BUDDY);
		EXPECT_EQ(stamp_at(a, t_pfn(a, b[i])), 0); /* cold: none */
	}
	EXPECT_EQ(pg_info(&a->pages[t_pfn(a, w[0])]) & PG_CACHE, 0);
	EXPECT(stamp_at(a, t_pfn(a, w[0])) > 0); /* the oldest warm one: now */
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/*
 * A forked child puts the caches of the parent's other threads back on its
 * buddy lists (tc_fork_child()) the way a quiescer's drain does: without a
 * stamp, since nothing says when their blocks were written (the owner's
 * own overflow drain would stamp a block it freed there: now).  Another
 * thread frees a dirty order-8 block into its cache and waits; the parent
 * forks; in the child the block is on the buddy lists, unstamped (merged
 * with never-used buddies, which do not count), and the arena checks.
 */
struct fork_peer {
	struct zp_arena *a;
	char *p;
	atomic_bool ready;
	pthread_t thread;
	int go[2]; /* the peer waits for the pipe's end */
};

static void *fork_peer_main(void *arg)
{
	struct fork_peer *fp = arg;
	char byte;

	fp->p = zp_alloc_pages(fp->a, 0, 8, ZP_USER_ADDR_NONE);
	if (fp->p) {
		memset(fp->p, 0x6b, ZP_PAGE_SIZE << 8);
		if (zp_free_pages(fp->a, fp->p, 8))
			fp->p = NULL;
	}
	atomic_store(&fp->ready, true);
	while (read(fp->go[0], &byte, 1) < 0 && errno == EINTR)
		;
	return NULL;
}

static void fork_child_puts_back_unstamped(void)
{
	static struct clk c; /* static, as fp: the peer may outlive a failed check */
	static struct fork_peer fp;
	struct zp_arena *a = warm_arena(2048, 10, &c);
	size_t pfn = 0;
	pid_t pid = -1;
	bool started = false;
	int st;

	fp = (struct fork_peer){.a = a, .go = {-1, -1}};
	ASSERT(tc_serves(a, 8));
	ASSERT_EQ(pipe(fp.go), 0);
	started = !pthread_create(&fp.thread, NULL, fork_peer_main, &fp);
	EXPECT(started);
	if (!started)
		goto out;
	while (!atomic_load(&fp.ready))
		sched_yield();
	EXPECT(fp.p);
	if (!fp.p)
		goto out;
	pfn = t_pfn(a, fp.p);
	EXPECT_EQ(pg_info(&a->pages[pfn]) & PG_OWNER_MASK, PG_CACHE); /* in the peer's cache */
	EXPECT_EQ(stamp_at(a, pfn), -1);
	pid = fork();
	if (pid == 0) {
		int code = 0;

		if ((pg_info(&a->pages[pfn]) & PG_OWNER_MASK) == PG_CACHE)
			code = 1; /* still in a cache nobody owns */
		else if (stamp_at(a, pfn) != 0)
			code = stamp_at(a, pfn) < 0 ? 2 : 3; /* on no buddy list; stamped */
		else if (zp_arena_check(a))
			code = 4;
		_exit(code);
	}
	EXPECT(pid > 0);
	/* the parent's side of the fork leaves the peer's cache alone */
	EXPECT_EQ(pg_info(&a->pages[pfn]) & PG_OWNER_MASK, PG_CACHE);
out:
	if (fp.go[1] >= 0)
		close(fp.go[1]); /* the peer's read() returns: it exits, its cache goes back */
	if (started)
		EXPECT_EQ(pthread_join(fp.thread, NULL), 0);
	if (pid > 0) {
		st = t_wait_child(pid);
		if (st > 0)
			T_DIAG("child: %s", st == 1   ? "the block is still in the peer's cache"
					    : st == 2 ? "the block is on no buddy list"
					    : st == 3 ? "the put-back block has a stamp"
						      : "zp_arena_check failed");
		EXPECT_EQ(st, 0);
	}
	if (fp.go[0] >= 0)
		close(fp.go[0]);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/* The checker: a stamp belongs on a buddy-list head only (an allocated
 * head's bits 16-31 may hold a tag, but not at order 9, which no cache
 * serves). */
static void stamp_outside_buddy_refused(void)
{
	struct clk c;
	struct zp_arena *a = warm_arena(1024, 10, &c);
	char *p = dirty_freed(a, 9);
	size_t pfn;
	uint32_t info;

	ASSERT(p);
	pfn = t_pfn(a, p);
	info = pg_info(&a->pages[pfn]);
	EXPECT((info & PG_OWNER_MASK) == PG_BUDDY);
	EXPECT(pg_stamp(info) != 0);
	EXPECT_EQ(zp_arena_check(a), 0);
	p = zp_alloc_pages(a, 0, 9, ZP_USER_ADDR_NONE);
	ASSERT(p);
	EXPECT_EQ(pg_stamp(pg_info(&a->pages[pfn])), 0); /* allocated: no stamp */
	T_DIAG("(one check failure is expected here)");
	info = pg_info(&a->pages[pfn]);
	pg_set_info(&a->pages[pfn], info | (1u << PG_STAMP_SHIFT));
	EXPECT_EQ(zp_arena_check(a), -EUCLEAN);
	pg_set_info(&a->pages[pfn], info);
	EXPECT_EQ(zp_arena_check(a), 0);
	ASSERT_EQ(zp_free_pages(a, p, 9), 0);
	zp_arena_destroy(a);
}

/* The defaults: warm for 1 ms (244 units), from the smallest order cleared
 * with non-temporal stores up to half the last-level cache (8 MiB assumed
 * when sysfs does not say). */
static void defaults(void)
{
	struct zp_arena *a = t_arena(64, 6, 0);
	size_t llc = os_llc_bytes(), half = (llc ? llc : (size_t)8 << 20) / 2;

	EXPECT_EQ(a->warm_units, 244);
	EXPECT_EQ(ZP_PAGE_SIZE << a->warm_min_order, a->nt_min_bytes);
	EXPECT(ZP_PAGE_SIZE << a->warm_max_order <= half);
	EXPECT(ZP_PAGE_SIZE << (a->warm_max_order + 1) > half);
	T_DIAG("last-level cache %zu KiB (sysfs%s): warm up to order %u", llc >> 10, llc ? "" : ": none, 8 MiB assumed",
	       a->warm_max_order);
	zp_arena_destroy(a);
}

int main(int argc, char **argv)
{
	t_init(argc, argv);
	RUN(warm_then_cold);
	RUN(split_and_merge);
	RUN(never_used_and_passes_not_warm);
	RUN(too_large_never_warm);
	RUN(refill_warm_is_hot);
	RUN(warm_across_the_wrap);
	RUN(merge_keeps_oldest_of_three);
	RUN(lower_half_and_prezero_split);
	RUN(small_blocks_take_last_stamp);
	RUN(exact_allocations);
	RUN(warm_across_a_merge_owed);
	RUN(grow_in_place_keeps_warmth);
	RUN(owner_drain_leaves_cold_unstamped);
	RUN(fork_child_puts_back_unstamped);
	RUN(reported_block_not_warm);
	RUN(stamp_outside_buddy_refused);
	RUN(defaults);
	return t_done("test_warm");
}
