/* SPDX-License-Identifier: MIT */
/*
 * The exactly-once clearing matrix.  For every combination of
 *   ZP_GFP_ZERO or not, user_addr or ZP_USER_ADDR_NONE,
 *   init_on_alloc, init_on_free,
 *   a fresh (OS-zeroed), dirty or partly dirty block, orders 0, 2 and 5,
 *   with and without the aliasing-cache simulation,
 * a hook in the clearing layer counts every clear per page and per path,
 * and the test asserts:
 *   - a zeroing request reads zero;
 *   - a page known to be zero is never cleared; a dirty one exactly once;
 *   - nothing outside the block is cleared, nothing is cleared for a
 *     non-zeroing request (unless init_on_free, at free, once);
 *   - with a user_addr every clear goes through the user path with the
 *     user address of that page, and the target page is cleared last;
 *     without, through the kernel path;
 *   - in aliasing mode the user path clears page by page (no clear of a
 *     user block through the kernel mapping, hence no double clear: the
 *     seed's init_on_alloc + aliasing-cache bug).
 */
#include "test.h"

#define NP 64 /* arena pages */

struct rec {
	struct zp_arena *a;
	unsigned kcnt[NP], ucnt[NP], seq[NP];
	uintptr_t uaddr[NP];
	unsigned next_seq;
	int bad_event;
};

static void hook(void *ctx, const struct clear_event *ev)
{
	struct rec *r = ctx;

	if (ev->pfn + ev->nr_pages > NP || !ev->nr_pages) {
		r->bad_event++;
		return;
	}
	if (r->a->aliasing && ev->user_path && ev->nr_pages != 1)
		r->bad_event++;
	if (!ev->user_path && ev->user_addr != ZP_USER_ADDR_NONE)
		r->bad_event++;
	r->next_seq++;
	for (size_t i = 0; i < ev->nr_pages; i++) {
		size_t p = ev->pfn + i;

		if (ev->user_path) {
			r->ucnt[p]++;
			r->uaddr[p] = ev->user_addr + (i << ZP_PAGE_SHIFT);
		} else {
			r->kcnt[p]++;
		}
		r->seq[p] = r->next_seq;
	}
}

static void reset(struct rec *r)
{
	struct zp_arena *a = r->a;

	memset(r, 0, sizeof(*r));
	r->a = a;
}

enum setup { FRESH, DIRTY, PARTLY, NR_SETUPS };
static const char *setup_names[] = {"fresh", "dirty", "partly-dirty"};

/* Counts the combination in *cases unless it does not exist; failures recorded. */
static void one_case(int aliasing, unsigned flags, zp_gfp_t gfp, int with_ua, enum setup st, unsigned order, int *cases)
{
	struct rec r = {0};
	struct zp_arena *a;
	size_t n = (size_t)1 << order, pfn, dirty_before = 0;
	bool was_zero[NP];
	bool want_zero = (gfp & ZP_GFP_ZERO) || (flags & ZP_INIT_ON_ALLOC);
	uintptr_t ua = ZP_USER_ADDR_NONE, ubase = 0;
	size_t target = 0;
	char *p;
	struct zp_stats s0, s1;
	int fails_before = t_cur_failed;

	if (st == PARTLY && order == 0)
		return;
	(*cases)++;
	a = t_arena(NP, 6, flags);
	r.a = a;
	zp_test_set_aliasing(a, aliasing);
	zp_test_set_clear_hook(a, hook, &r);

	if (st == DIRTY || st == PARTLY) {
		unsigned o = st == DIRTY ? order : order - 1;
		char *d = zp_alloc_pages(a, 0, o, ZP_USER_ADDR_NONE);

		ASSERT(d);
		memset(d, 0x5c, ZP_PAGE_SIZE << o);
		ASSERT_EQ(zp_free_pages(a, d, o), 0);
		zp_test_drain_pcp(a); /* merge it with its zero buddy */
	}
	for (size_t i = 0; i < NP; i++)
		was_zero[i] = zs_test_zero(a, i);
	reset(&r);
	s0 = t_stats(a);

	if (with_ua) {
		target = (size_t)(order * 7 + 3) & (n - 1);
		ua = (uintptr_t)0x7f1234000000ull + (target << ZP_PAGE_SHIFT) + 123;
		ubase = ua & ~(uintptr_t)((ZP_PAGE_SIZE << order) - 1);
	}
	p = zp_alloc_pages(a, gfp, order, ua);
	ASSERT(p);
	pfn = t_pfn(a, p);
	s1 = t_stats(a);

	for (size_t i = 0; i < n; i++)
		dirty_before += !was_zero[pfn + i];
	if (!(flags & ZP_INIT_ON_FREE)) {
		size_t expect = st == FRESH ? 0 : st == DIRTY ? n : n / 2;

		EXPECT_EQ(dirty_before, expect);
	} else {
		EXPECT_EQ(dirty_before, 0);
	}

	if (want_zero)
		EXPECT(t_all_zero(p, n << ZP_PAGE_SHIFT));
	for (size_t i = 0; i < NP; i++) {
		unsigned c = r.kcnt[i] + r.ucnt[i];
		bool in = i >= pfn && i < pfn + n;
		unsigned expect = in && want_zero && !was_zero[i];

		if (c != expect) {
			T_REPORT("page %zu cleared %u times, expected %u", i, c, expect);
			break;
		}
		if (in && with_ua && c) {
			EXPECT_EQ(r.kcnt[i], 0);
			EXPECT_EQ(r.uaddr[i], ubase + ((i - pfn) << ZP_PAGE_SHIFT));
		}
		if (!with_ua)
			EXPECT_EQ(r.ucnt[i], 0);
	}
	if (with_ua && want_zero && !was_zero[pfn + target])
		EXPECT_EQ(r.seq[pfn + target], r.next_seq); /* target last */
	EXPECT_EQ(r.bad_event, 0);
	EXPECT_EQ(s1.pages_cleared - s0.pages_cleared, want_zero ? dirty_before : 0);
	EXPECT_EQ(s1.pages_clear_skipped - s0.pages_clear_skipped, want_zero ? n - dirty_before : 0);

	/* free: init_on_free clears each page once, through the kernel path */
	reset(&r);
	ASSERT_EQ(zp_free_pages(a, p, order), 0);
	for (size_t i = 0; i < NP; i++) {
		bool in = i >= pfn && i < pfn + n;
		unsigned expect = in && (flags & ZP_INIT_ON_FREE);

		if (r.kcnt[i] != expect || r.ucnt[i]) {
			T_REPORT("free: page %zu cleared %u+%u times, expected %u", i, r.kcnt[i], r.ucnt[i], expect);
			break;
		}
	}
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
	if (t_cur_failed != fails_before)
		T_DIAG("  in case: aliasing=%d flags=%#x gfp=%#x user_addr=%d %s order=%u", aliasing, flags, gfp,
		       with_ua, setup_names[st], order);
}

static void exactly_once_matrix(void)
{
	static const unsigned flag_sets[] = {0, ZP_INIT_ON_ALLOC, ZP_INIT_ON_FREE, ZP_INIT_ON_ALLOC | ZP_INIT_ON_FREE};
	static const unsigned orders[] = {0, 2, 5};
	int cases = 0;

	for (int al = 0; al < 2; al++)
		for (size_t f = 0; f < 4; f++)
			for (zp_gfp_t g = 0; g <= ZP_GFP_ZERO; g++)
				for (int ua = 0; ua < 2; ua++)
					for (int st = 0; st < NR_SETUPS; st++)
						for (size_t o = 0; o < 3; o++)
							one_case(al, flag_sets[f], g, ua, st, orders[o], &cases);
	EXPECT_EQ(cases, 2 * 4 * 2 * 2 * (3 * 3 - 1));
}

/* The seed's scenario, spelled out: init_on_alloc on an aliasing-cache CPU,
 * a user fault into a dirty order-5 block.  Each page is cleared once,
 * through the user-congruent path, never through the kernel mapping. */
static void aliasing_init_on_alloc_no_double_clear(void)
{
	struct rec r = {0};
	struct zp_arena *a = t_arena(NP, 6, ZP_INIT_ON_ALLOC);
	char *p;

	r.a = a;
	zp_test_set_aliasing(a, true);
	p = zp_alloc_pages(a, 0, 5, ZP_USER_ADDR_NONE);
	ASSERT(p);
	memset(p, 1, 32 * ZP_PAGE_SIZE);
	ASSERT_EQ(zp_free_pages(a, p, 5), 0);
	zp_test_set_clear_hook(a, hook, &r);
	p = zp_alloc_pages(a, ZP_GFP_ZERO, 5, 0x400000 + 17 * ZP_PAGE_SIZE);
	ASSERT(p);
	for (size_t i = 0; i < 32; i++) {
		size_t q = t_pfn(a, p) + i;

		EXPECT_EQ(r.kcnt[q], 0);
		EXPECT_EQ(r.ucnt[q], 1);
	}
	EXPECT_EQ(r.next_seq, 32); /* one event per page */
	EXPECT_EQ(r.seq[t_pfn(a, p) + 17], 32);
	EXPECT(t_all_zero(p, 32 * ZP_PAGE_SIZE));
	zp_arena_destroy(a);
}

/* Address 0 is a valid user address (target page 0), not "no address". */
static void user_addr_zero_is_an_address(void)
{
	struct rec r = {0};
	struct zp_arena *a = t_arena(NP, 6, 0);
	char *p = zp_alloc_pages(a, 0, 4, ZP_USER_ADDR_NONE);

	r.a = a;
	ASSERT(p);
	ASSERT_EQ(zp_free_pages(a, p, 4), 0);
	zp_test_set_clear_hook(a, hook, &r);
	p = zp_alloc_pages(a, ZP_GFP_ZERO, 4, 0);
	ASSERT(p);
	EXPECT_EQ(r.kcnt[t_pfn(a, p)], 0);
	EXPECT_EQ(r.ucnt[t_pfn(a, p)], 1);
	EXPECT_EQ(r.uaddr[t_pfn(a, p)], 0);
	EXPECT_EQ(r.seq[t_pfn(a, p)], r.next_seq);
	zp_arena_destroy(a);
}

int main(int argc, char **argv)
{
	t_init(argc, argv);
	RUN(exactly_once_matrix);
	RUN(aliasing_init_on_alloc_no_double_clear);
	RUN(user_addr_zero_is_an_address);
	return t_done("test_clear");
}
