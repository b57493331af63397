/* SPDX-License-Identifier: MIT */
/*
 * Exact-size allocations: zp_alloc(), zp_free(), zp_usable_size().
 *
 *  - the pages in use are the request rounded up to pages, no more; the
 *    rest of the power-of-two block goes back with its zero state;
 *  - sizes: 0 is EINVAL, larger than a max_order block or the arena is
 *    ENOMEM, a power of two is a plain block that zp_free() takes too;
 *  - bad frees (interior, foreign, misaligned, double, zp_free_pages() of an
 *    exact allocation) return -EINVAL with nothing changed;
 *    zp_usable_size() is 0 for all of those;
 *  - zeroing: only the pages kept are cleared, and only the dirty ones;
 *  - random sizes against a model of page owners, with the checker.
 */
#include <pthread.h>

#include "test.h"

#define PAGES 1024

static void sizes_and_pages_in_use(void)
{
	struct zp_arena *a = t_arena(PAGES, 9, 0);
	struct {
		size_t size, pages;
	} c[] = {{1, 1}, {4096, 1}, {4097, 2}, {3 * 4096, 3}, {3 * 4096 - 5, 3}, {5 * 4096, 5},
		 {100 * 4096 + 1, 101}, {300 * 4096, 300}, {511 * 4096, 511}, {512 * 4096, 512}};
	void *p;

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		ASSERT((p = zp_alloc(a, 0, c[i].size, ZP_USER_ADDR_NONE)));
		EXPECT_EQ(t_stats(a).nr_free, PAGES - c[i].pages);
		EXPECT_EQ(zp_usable_size(a, p), c[i].pages * ZP_PAGE_SIZE);
		EXPECT_EQ(zp_arena_check(a), 0);
		memset(p, 0x11, c[i].size);
		EXPECT_EQ(zp_free(a, p), 0);
		EXPECT_EQ(t_stats(a).nr_free, PAGES);
		EXPECT_EQ(zp_usable_size(a, p), 0);
	}
	errno = 0;
	EXPECT(zp_alloc(a, 0, 0, ZP_USER_ADDR_NONE) == NULL && errno == EINVAL);
	errno = 0;
	EXPECT(zp_alloc(a, 0, 513 * 4096, ZP_USER_ADDR_NONE) == NULL && errno == ENOMEM); /* > max_order */
	errno = 0;
	EXPECT(zp_alloc(a, 0, SIZE_MAX, ZP_USER_ADDR_NONE) == NULL && errno == ENOMEM);
	errno = 0;
	EXPECT(zp_alloc(NULL, 0, 4096, ZP_USER_ADDR_NONE) == NULL && errno == EINVAL);
	errno = 0;
	EXPECT(zp_alloc(a, 0x80, 4096, ZP_USER_ADDR_NONE) == NULL && errno == EINVAL);
	EXPECT_EQ(t_stats(a).nr_free, PAGES);
	/* two 300-page allocations take two 512-page blocks and give back 212
	 * pages of each (4 + 16 + 64 + 128): their 128-page pieces serve two
	 * more 128-page requests, which whole blocks would not have left */
	void *q[4];

	for (int i = 0; i < 2; i++)
		EXPECT((q[i] = zp_alloc(a, 0, 300 * 4096, ZP_USER_ADDR_NONE)) != NULL);
	EXPECT_EQ(t_stats(a).nr_free, PAGES - 600);
	for (int i = 2; i < 4; i++)
		EXPECT((q[i] = zp_alloc(a, 0, 128 * 4096, ZP_USER_ADDR_NONE)) != NULL);
	EXPECT_EQ(t_stats(a).nr_free, PAGES - 856);
	EXPECT_EQ(zp_arena_check(a), 0);
	for (int i = 0; i < 4; i++)
		if (q[i])
			EXPECT_EQ(zp_free(a, q[i]), 0);
	EXPECT_EQ(t_stats(a).nr_free, PAGES);
	EXPECT_EQ(zp_arena_check(a), 0);
	/* a smaller arena than a block: larger than the arena is ENOMEM */
	zp_arena_destroy(a);
	a = t_arena(100, 9, 0);
	errno = 0;
	EXPECT(zp_alloc(a, 0, 101 * 4096, ZP_USER_ADDR_NONE) == NULL && errno == ENOMEM);
	EXPECT((p = zp_alloc(a, 0, 60 * 4096, ZP_USER_ADDR_NONE)) != NULL);
	EXPECT_EQ(t_stats(a).nr_free, 40);
	EXPECT_EQ(zp_free(a, p), 0);
	EXPECT_EQ(zp_arena_check(a), 0);
	/* a size the arena holds but whose power of two it does not: 90
	 * pages take a 128-page block, which a 100-page arena never has */
	errno = 0;
	EXPECT(zp_alloc(a, 0, 90 * 4096, ZP_USER_ADDR_NONE) == NULL && errno == ENOMEM);
	EXPECT_EQ(t_stats(a).nr_free, 100);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

static void bad_frees_change_nothing(void)
{
	struct zp_arena *a = t_arena(PAGES, 9, 0);
	char *p = zp_alloc(a, 0, 5 * 4096, ZP_USER_ADDR_NONE), *b = zp_alloc_pages(a, 0, 2, ZP_USER_ADDR_NONE);
	struct zp_stats s0, s1;
	char local[64];

	ASSERT(p && b);
	s0 = t_stats(a);
	EXPECT_EQ(zp_free(a, p + ZP_PAGE_SIZE), -EINVAL);     /* interior */
	EXPECT_EQ(zp_free(a, p + 4 * ZP_PAGE_SIZE), -EINVAL); /* its last page */
	EXPECT_EQ(zp_free(a, p + 5 * ZP_PAGE_SIZE), -EINVAL); /* the first page given back */
	EXPECT_EQ(zp_free(a, p + 8), -EINVAL);		      /* misaligned */
	EXPECT_EQ(zp_free(a, local), -EINVAL);		      /* foreign */
	EXPECT_EQ(zp_free(a, NULL), -EINVAL);
	EXPECT_EQ(zp_free(NULL, p), -EINVAL);
	EXPECT_EQ(zp_free(a, b + ZP_PAGE_SIZE), -EINVAL);     /* inside a plain block */
	EXPECT_EQ(zp_free_pages(a, p, 3), -EINVAL);	      /* the order it came from */
	EXPECT_EQ(zp_free_pages(a, p, 2), -EINVAL);
	EXPECT_EQ(zp_usable_size(a, p + ZP_PAGE_SIZE), 0);
	EXPECT_EQ(zp_usable_size(a, local), 0);
	EXPECT_EQ(zp_usable_size(a, p + 5 * ZP_PAGE_SIZE), 0);
	EXPECT_EQ(zp_usable_size(NULL, p), 0);
	EXPECT_EQ(zp_usable_size(a, NULL), 0);
	EXPECT_EQ(zp_usable_size(a, b), 4 * ZP_PAGE_SIZE);
	/* just outside the arena, either side, and the top of the address space */
	EXPECT_EQ(zp_free(a, a->base - ZP_PAGE_SIZE), -EINVAL);
	EXPECT_EQ(zp_free(a, a->base + (a->nr_pages << ZP_PAGE_SHIFT)), -EINVAL);
	EXPECT_EQ(zp_free(a, (void *)(uintptr_t)-ZP_PAGE_SIZE), -EINVAL);
	EXPECT_EQ(zp_usable_size(a, a->base + (a->nr_pages << ZP_PAGE_SHIFT)), 0);
	s1 = t_stats(a);
	EXPECT(t_stats_equal(&s0, &s1));
	EXPECT_EQ(zp_arena_check(a), 0);
	EXPECT_EQ(zp_free(a, p), 0);
	EXPECT_EQ(zp_free(a, p), -EINVAL); /* double */
	EXPECT_EQ(zp_free(a, b), 0);	   /* a plain block, order read from the arena */
	EXPECT_EQ(zp_free(a, b), -EINVAL);
	EXPECT_EQ(t_stats(a).nr_free, PAGES);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/* Zeroing: fresh memory clears nothing and the page given back stays
 * reported; dirty memory clears the pages kept, not the rest. */
static void zeroing_clears_only_what_is_kept(void)
{
	struct zp_arena *a = t_arena(PAGES, 9, 0);
	struct zp_stats s;
	char *p;

	ASSERT((p = zp_alloc(a, ZP_GFP_ZERO, 3 * 4096, ZP_USER_ADDR_NONE)));
	s = t_stats(a);
	EXPECT_EQ(s.pages_cleared, 0);
	EXPECT_EQ(s.pages_clear_skipped, 3);
	EXPECT_EQ(s.nr_free_reported, PAGES - 3); /* the fourth page too */
	EXPECT(t_all_zero(p, 3 * ZP_PAGE_SIZE));
	memset(p, 0x22, 3 * ZP_PAGE_SIZE);
	EXPECT_EQ(zp_free(a, p), 0);
	/* every page dirty: a 300-page zeroing allocation clears 300, with the
	 * target (page 400 of its 512-page block, beyond the size) last */
	for (int i = 0; i < 2; i++) {
		ASSERT((p = zp_alloc_pages(a, 0, 9, ZP_USER_ADDR_NONE)));
		memset(p, 0x33, 512 * ZP_PAGE_SIZE);
		if (i == 1)
			EXPECT_EQ(zp_free_pages(a, p, 9), 0);
	}
	/* (the first stays allocated: the second's memory is the only free) */
	s = t_stats(a);
	ASSERT((p = zp_alloc(a, ZP_GFP_ZERO, 300 * 4096, (uintptr_t)400 << ZP_PAGE_SHIFT)));
	EXPECT(t_all_zero(p, 300 * ZP_PAGE_SIZE));
	EXPECT_EQ(t_stats(a).pages_cleared - s.pages_cleared, 300);
	EXPECT_EQ(t_stats(a).nr_free, 212);
	EXPECT_EQ(zp_arena_check(a), 0);
	EXPECT_EQ(zp_free(a, p), 0);
	zp_arena_destroy(a);
}

/* Random sizes against a model: every page has at most one owner, tags in
 * every page survive until the free, zeroing allocations read zero, and
 * the free page count is the model's. */
struct live {
	char *p;
	size_t pages;
	uint64_t tag;
};

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

static void random_sizes_against_a_model(void)
{
	struct zp_arena *a = t_arena(PAGES, 8, 0);
	static int owner[PAGES];
	struct live live[64];
	size_t nlive = 0, used = 0, enomem = 0;
	uint64_t s = 0x5eed;

	memset(owner, 0, sizeof(owner));
	for (int op = 0; op < 20000; op++) {
		uint64_t r = rnd(&s);

		if (nlive < 64 && (nlive == 0 || (r & 1))) {
			size_t size = 1 + (size_t)(rnd(&s) % (200 * ZP_PAGE_SIZE));
			bool zero = (r >> 1) & 1;
			struct live l = {.tag = rnd(&s) | 1};
			size_t pfn;

			l.p = zp_alloc(a, zero ? ZP_GFP_ZERO : 0, size, (r >> 2) & 1 ? (uintptr_t)rnd(&s) : ZP_USER_ADDR_NONE);
			if (!l.p) {
				ASSERT_EQ(errno, ENOMEM);
				enomem++;
				continue;
			}
			l.pages = (size + ZP_PAGE_SIZE - 1) / ZP_PAGE_SIZE;
			ASSERT_EQ(zp_usable_size(a, l.p), l.pages * ZP_PAGE_SIZE);
			pfn = t_pfn(a, l.p);
			for (size_t i = 0; i < l.pages; i++) {
				ASSERT_EQ(owner[pfn + i], 0);
				owner[pfn + i] = op + 1;
				if (zero)
					ASSERT(t_all_zero(l.p + i * ZP_PAGE_SIZE, ZP_PAGE_SIZE));
				*(uint64_t *)(l.p + i * ZP_PAGE_SIZE) = l.tag;
				*(uint64_t *)(l.p + (i + 1) * ZP_PAGE_SIZE - 8) = l.tag;
			}
			used += l.pages;
			live[nlive++] = l;
		} else {
			size_t k = (size_t)(r >> 8) % nlive, pfn;
			struct live l = live[k];

			live[k] = live[--nlive];
			pfn = t_pfn(a, l.p);
			for (size_t i = 0; i < l.pages; i++) {
				ASSERT_EQ(*(uint64_t *)(l.p + i * ZP_PAGE_SIZE), l.tag);
				ASSERT_EQ(*(uint64_t *)(l.p + (i + 1) * ZP_PAGE_SIZE - 8), l.tag);
				owner[pfn + i] = 0;
			}
			ASSERT_EQ(zp_free(a, l.p), 0);
			used -= l.pages;
		}
		if (op % 2000 == 1999) {
			ASSERT_EQ(zp_arena_check(a), 0);
			ASSERT_EQ(t_stats(a).nr_free, PAGES - used);
		}
	}
	T_NOTE("random sizes: %zu ENOMEM in 20000 operations", enomem);
	EXPECT_GT(enomem, 0); /* the arena was full at times */
	while (nlive)
		EXPECT_EQ(zp_free(a, live[--nlive].p), 0);
	EXPECT_EQ(t_stats(a).nr_free, PAGES);
	EXPECT_EQ(zp_arena_check(a), 0);
	/* everything merged back: the whole arena as max-order blocks */
	for (int i = 0; i < PAGES >> 8; i++)
		EXPECT(zp_alloc_pages(a, 0, 8, ZP_USER_ADDR_NONE) != NULL);
	zp_arena_destroy(a);
}

/* init_on_free over an exact allocation's pages only; verify poisoning of
 * them at free, and the zero check of the pages kept at allocation. */
static void free_flags_cover_the_pages_kept(void)
{
	struct zp_arena *a = t_arena(PAGES, 9, ZP_INIT_ON_FREE);
	char *p = zp_alloc(a, 0, 5 * 4096, ZP_USER_ADDR_NONE);
	uint64_t c0;

	ASSERT(p);
	memset(p, 0x44, 5 * ZP_PAGE_SIZE);
	c0 = t_stats(a).pages_cleared;
	EXPECT_EQ(zp_free(a, p), 0);
	EXPECT_EQ(t_stats(a).pages_cleared - c0, 5);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);

	a = t_arena(PAGES, 9, ZP_VERIFY);
	ASSERT((p = zp_alloc(a, 0, 5 * 4096, ZP_USER_ADDR_NONE)));
	memset(p, 0x44, 5 * ZP_PAGE_SIZE);
	EXPECT_EQ(zp_free(a, p), 0);
	for (size_t i = 0; i < 5 * ZP_PAGE_SIZE; i += 997)
		EXPECT_EQ((unsigned char)p[i], 0xaa); /* poisoned, all 5 pages (free, still mapped) */
	/* a zeroing allocation checks the zero pages it hands out: fresh ones */
	ASSERT((p = zp_alloc(a, ZP_GFP_ZERO, 7 * 4096, ZP_USER_ADDR_NONE)));
	EXPECT(t_all_zero(p, 7 * ZP_PAGE_SIZE));
	EXPECT_EQ(t_stats(a).verify_failures, 0);
	EXPECT_EQ(zp_free(a, p), 0);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/* The pages given back keep their state: pre-zeroed ones stay zeroed (not
 * merely reported), and a later zeroing allocation of them clears nothing. */
static void pieces_keep_their_zero_state(void)
{
	struct zp_arena *a = t_arena(512, 9, 0);
	char *p = zp_alloc_pages(a, 0, 9, ZP_USER_ADDR_NONE);
	struct zp_stats s;

	ASSERT(p);
	memset(p, 0x55, 512 * ZP_PAGE_SIZE);
	EXPECT_EQ(zp_free_pages(a, p, 9), 0);
	EXPECT_EQ(zp_arena_prezero(a, 512 * ZP_PAGE_SIZE), 512);
	ASSERT((p = zp_alloc(a, ZP_GFP_ZERO, 300 * 4096, ZP_USER_ADDR_NONE)));
	s = t_stats(a);
	EXPECT_EQ(s.nr_free, 212);
	EXPECT_EQ(s.nr_free_zeroed, 212); /* zeroed and resident, not reported */
	EXPECT_EQ(s.nr_free_reported, 0);
	EXPECT_EQ(s.pages_cleared, 512); /* the pre-zero pass's, none since */
	EXPECT_EQ(zp_free(a, p), 0);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/* With a user address whose page lies beyond the size, the last page kept is
 * the target: cleared last, with cached stores.  Cold (warmth off): the far
 * pages first, non-temporal, then the neighbourhood; warm (the block freed a
 * moment ago): one cached clear of the 300 pages, ending with the target. */
struct last_clear {
	size_t first, n, nt_pages;
	int events;
};

static void note_clear(void *ctx, const struct clear_event *ev)
{
	struct last_clear *l = ctx;

	l->first = ev->pfn;
	l->n = ev->nr_pages;
	l->nt_pages += ev->nt ? ev->nr_pages : 0;
	l->events++;
}

static void target_beyond_the_size_is_cleared_last(void)
{
	for (int warm = 0; warm < 2; warm++) {
		struct zp_arena *a = t_arena(1024, 9, 0);
		struct last_clear l = {0};
		char *p = zp_alloc_pages(a, 0, 9, ZP_USER_ADDR_NONE), *q;

		if (!warm)
			zp_test_set_warm_ns(a, 0);
		else
			zp_test_set_warm_ns(a, (uint64_t)1 << 40); /* capped: ~134 ms, whatever the machine's pace */
		a->warm_max_order = 9;			   /* whatever its cache */
		ASSERT(p);
		memset(p, 0x66, 512 * ZP_PAGE_SIZE); /* dirty */
		ASSERT((q = zp_alloc_pages(a, 0, 9, ZP_USER_ADDR_NONE)));
		EXPECT_EQ(zp_free_pages(a, p, 9), 0);
		zp_test_set_clear_hook(a, note_clear, &l);
		ASSERT((p = zp_alloc(a, ZP_GFP_ZERO, 300 * 4096, (uintptr_t)400 << ZP_PAGE_SHIFT)));
		zp_test_set_clear_hook(a, NULL, NULL);
		EXPECT(t_all_zero(p, 300 * ZP_PAGE_SIZE));
		if (warm) {
			EXPECT_EQ(l.events, 1);
			EXPECT_EQ(l.nt_pages, 0);
		} else {
			EXPECT_GE(l.events, 2);
			EXPECT_GT(l.nt_pages, 0);
		}
		EXPECT_EQ(l.first + l.n, t_pfn(a, p) + 300); /* the last clear ends with page 299 */
		EXPECT_EQ(zp_free(a, p), 0);
		EXPECT_EQ(zp_free_pages(a, q, 9), 0);
		zp_arena_destroy(a);
	}
}

/* The drop-in's realloc: growing in place over the free pages after an
 * allocation (refused when one was taken), and moving pages into another
 * allocation without a copy (the moved-out pages come back zeroed and
 * reported). */
static void grow_in_place_and_move(void)
{
	struct zp_arena *a = t_arena(8, 3, 0);
	char *p, *q;

	zp_test_set_pcp(a, false); /* the buddy lists only: which pages are free is known */
	ASSERT((p = zp_alloc(a, 0, 5 * 4096, ZP_USER_ADDR_NONE)));
	memset(p, 0x42, 5 * ZP_PAGE_SIZE);
	EXPECT_EQ(zp_grow_in_place(a, p, 6 * 4096), 0);
	EXPECT_EQ(zp_usable_size(a, p), 6 * ZP_PAGE_SIZE);
	EXPECT_EQ(t_stats(a).nr_free, 2);
	EXPECT_EQ(zp_arena_check(a), 0);
	EXPECT_EQ(zp_grow_in_place(a, p, 8 * 4096), 0); /* the whole block: a plain one now */
	EXPECT_EQ(zp_usable_size(a, p), 8 * ZP_PAGE_SIZE);
	EXPECT_EQ(t_stats(a).nr_free, 0);
	EXPECT_EQ(zp_arena_check(a), 0);
	EXPECT_EQ(zp_grow_in_place(a, p, 9 * 4096), -ENOMEM); /* past its block */
	EXPECT_EQ(zp_grow_in_place(NULL, p, 8 * 4096), -EINVAL);
	EXPECT_EQ(zp_move_and_free(NULL, p, p, ZP_PAGE_SIZE), -EINVAL);
	EXPECT((unsigned char)p[0] == 0x42 && (unsigned char)p[5 * ZP_PAGE_SIZE - 1] == 0x42);
	EXPECT_EQ(zp_free(a, p), 0);
	/* a page after it taken: refused, nothing changed */
	ASSERT((p = zp_alloc(a, 0, 5 * 4096, ZP_USER_ADDR_NONE)));
	ASSERT((q = zp_alloc_pages(a, 0, 0, ZP_USER_ADDR_NONE)));
	EXPECT_EQ(t_pfn(a, q), t_pfn(a, p) + 5);
	EXPECT_EQ(zp_grow_in_place(a, p, 6 * 4096), -ENOMEM);
	EXPECT_EQ(zp_usable_size(a, p), 5 * ZP_PAGE_SIZE);
	EXPECT_EQ(t_stats(a).nr_free, 2);
	EXPECT_EQ(zp_arena_check(a), 0);
	EXPECT_EQ(zp_free(a, q), 0);
	EXPECT_EQ(zp_free(a, p), 0);
	zp_arena_destroy(a);

	/* moving: 3 pages of content into a 6-page allocation */
	a = t_arena(64, 6, 0);
	ASSERT((p = zp_alloc(a, 0, 3 * 4096, ZP_USER_ADDR_NONE)));
	ASSERT((q = zp_alloc(a, 0, 6 * 4096, ZP_USER_ADDR_NONE)));
	for (int i = 0; i < 3; i++)
		memset(p + i * ZP_PAGE_SIZE, 0x10 + i, ZP_PAGE_SIZE);
	if (zp_move_and_free(a, p, q, 3 * ZP_PAGE_SIZE) == -EINVAL) {
		zp_free(a, p);
		zp_free(a, q);
		zp_arena_destroy(a);
		SKIP("mremap(MREMAP_DONTUNMAP) refused (a kernel before 5.7)");
	}
	for (int i = 0; i < 3; i++)
		EXPECT_EQ((unsigned char)q[i * ZP_PAGE_SIZE + 77], 0x10 + i);
	EXPECT(t_all_zero(p, 3 * ZP_PAGE_SIZE)); /* free now: moved out, reads zero */
	EXPECT_EQ(t_stats(a).nr_free, 64 - 6);
	EXPECT_EQ(zp_free(a, p), -EINVAL); /* it was freed */
	EXPECT_EQ(zp_arena_check(a), 0);
	EXPECT_EQ(zp_move_and_free(a, q, q, 4 * ZP_PAGE_SIZE), -EINVAL); /* into itself: refused */
	EXPECT_EQ(zp_free(a, q), 0);
	EXPECT_EQ(t_stats(a).nr_free, 64);
	EXPECT_EQ(zp_arena_check(a), 0);

	/* a move that fails after the kernel unmapped its target (kernels
	 * before 6.17 unmap an MREMAP_FIXED target first, then may refuse
	 * the source): the old block is live and unchanged, and the target
	 * is mapped again, so the caller's copy into it does not fault */
	ASSERT((p = zp_alloc(a, 0, 3 * 4096, ZP_USER_ADDR_NONE)));
	ASSERT((q = zp_alloc(a, 0, 6 * 4096, ZP_USER_ADDR_NONE)));
	for (int i = 0; i < 3; i++)
		memset(p + i * ZP_PAGE_SIZE, 0x20 + i, ZP_PAGE_SIZE);
	zp_test_fail_next_move(1);
	EXPECT_EQ(zp_move_and_free(a, p, q, 3 * ZP_PAGE_SIZE), -EFAULT);
	EXPECT_EQ(zp_usable_size(a, p), 3 * ZP_PAGE_SIZE); /* still live */
	for (int i = 0; i < 3; i++)
		EXPECT_EQ((unsigned char)p[i * ZP_PAGE_SIZE + 77], 0x20 + i);
	memcpy(q, p, 3 * ZP_PAGE_SIZE); /* the drop-in's fallback: a fault here without the remap */
	EXPECT_EQ((unsigned char)q[2 * ZP_PAGE_SIZE + 77], 0x22);
	EXPECT_EQ(zp_free(a, p), 0);
	EXPECT_EQ(zp_free(a, q), 0);
	EXPECT_EQ(zp_arena_check(a), 0);
	ASSERT((q = zp_alloc_pages(a, ZP_GFP_ZERO, 6, ZP_USER_ADDR_NONE))); /* the whole arena, zeroed */
	EXPECT(t_all_zero(q, 64 * ZP_PAGE_SIZE));
	EXPECT_EQ(zp_free_pages(a, q, 6), 0);

	/* the same, and another thread maps a page into the hole first: the
	 * target cannot be mapped again without taking that page over, so
	 * the move says the target is lost (-ENOTRECOVERABLE), the old block
	 * is live and unchanged, and the other mapping keeps its contents */
	ASSERT((p = zp_alloc(a, 0, 3 * 4096, ZP_USER_ADDR_NONE)));
	ASSERT((q = zp_alloc(a, 0, 6 * 4096, ZP_USER_ADDR_NONE)));
	memset(p, 0x30, 3 * ZP_PAGE_SIZE);
	zp_test_fail_next_move(2);
	EXPECT_EQ(zp_move_and_free(a, p, q, 3 * ZP_PAGE_SIZE), -ENOTRECOVERABLE);
	EXPECT_EQ(zp_usable_size(a, p), 3 * ZP_PAGE_SIZE);
	EXPECT_EQ((unsigned char)p[2 * ZP_PAGE_SIZE + 5], 0x30);
	EXPECT(t_all_zero(q, ZP_PAGE_SIZE)); /* the other mapping's page, untouched */
	EXPECT_EQ(zp_free(a, p), 0);
	EXPECT_EQ(zp_arena_check(a), 0); /* q stays allocated: its pages are lost */
	zp_arena_destroy(a);
}

/* Two threads freeing the same exact allocation: exactly one wins. */
struct racer {
	struct zp_arena *a;
	void *p;
	pthread_barrier_t *bar;
	int ret;
};

static void *race_free(void *arg)
{
	struct racer *r = arg;

	pthread_barrier_wait(r->bar);
	r->ret = zp_free(r->a, r->p);
	return NULL;
}

static void racing_double_free(void)
{
	struct zp_arena *a = t_arena(PAGES, 9, 0);
	pthread_barrier_t bar;

	pthread_barrier_init(&bar, NULL, 2);
	for (int round = 0; round < 200; round++) {
		void *p = zp_alloc(a, 0, (size_t)(3 + round % 60) * ZP_PAGE_SIZE, ZP_USER_ADDR_NONE);
		struct racer r[2] = {{a, p, &bar, 1}, {a, p, &bar, 1}};
		pthread_t t[2];

		ASSERT(p);
		for (int i = 0; i < 2; i++)
			ASSERT_EQ(pthread_create(&t[i], NULL, race_free, &r[i]), 0);
		for (int i = 0; i < 2; i++)
			pthread_join(t[i], NULL);
		if (r[0].ret + r[1].ret != -EINVAL || (r[0].ret && r[1].ret)) {
			T_REPORT("round %d: frees returned %d and %d", round, r[0].ret, r[1].ret);
			break;
		}
	}
	EXPECT_EQ(t_stats(a).nr_free, PAGES);
	EXPECT_EQ(zp_arena_check(a), 0);
	pthread_barrier_destroy(&bar);
	zp_arena_destroy(a);
}

/*
 * Exact allocations above merge_order (9): a 5 MiB allocation takes an
 * order-11 block and gives back 3 MiB as pieces of 1 and 2 MiB; grown to
 * the whole block and freed, it lies beside its listed buddy, a merge owed
 * that a request for the whole arena makes.
 */
static void exact_above_merge_order(void)
{
	struct zp_arena *a = t_arena(4096, 12, 0);
	char *p;

	zp_test_set_pcp(a, false);
	ASSERT((p = zp_alloc(a, 0, 5 << 20, ZP_USER_ADDR_NONE)));
	EXPECT_EQ(t_pfn(a, p), 0);
	EXPECT_EQ(t_stats(a).nr_free, 4096 - 1280);
	EXPECT_EQ(zp_arena_check(a), 0);
	EXPECT_EQ(zp_grow_in_place(a, p, 6 << 20), 0);
	EXPECT_EQ(zp_usable_size(a, p), (size_t)6 << 20);
	EXPECT_EQ(zp_grow_in_place(a, p, 8 << 20), 0); /* the whole block: a plain one */
	EXPECT_EQ(zp_usable_size(a, p), (size_t)8 << 20);
	EXPECT_EQ(zp_arena_check(a), 0);
	EXPECT_EQ(zp_free(a, p), 0);
	EXPECT_EQ(a->owed[11], 0);
	EXPECT_EQ(zp_arena_check(a), 0);
	ASSERT((p = zp_alloc(a, 0, 16 << 20, ZP_USER_ADDR_NONE)));
	EXPECT_EQ(t_pfn(a, p), 0);
	EXPECT_EQ(a->owed[11], NIL);
	EXPECT_EQ(zp_free(a, p), 0);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/*
 * A piece of the excess split by another request and freed again lies
 * apart as a merge owed; growing in place makes it first.  9 MiB of an
 * order-12 block gives back pieces of order 8, 9 and 10 (at 2304, 2560,
 * 3072); two order-9 requests take 2560 and half of 3072's; freed, 3072
 * and 3584 are a pair apart.  Growing to the whole block takes all three.
 */
static void grow_in_place_over_a_merge_owed(void)
{
	struct zp_arena *a = t_arena(4096, 12, 0);
	char *p, *x, *y;

	zp_test_set_pcp(a, false);
	ASSERT((p = zp_alloc(a, 0, 9 << 20, ZP_USER_ADDR_NONE)));
	ASSERT(t_pfn(a, p) == 0);
	ASSERT((x = zp_alloc_pages(a, 0, 9, ZP_USER_ADDR_NONE)));
	ASSERT((y = zp_alloc_pages(a, 0, 9, ZP_USER_ADDR_NONE)));
	ASSERT(t_pfn(a, x) == 2560 && t_pfn(a, y) == 3072);
	ASSERT_EQ(zp_free_pages(a, y, 9), 0);
	ASSERT_EQ(zp_free_pages(a, x, 9), 0);
	EXPECT_EQ(a->owed[9], 3072);
	EXPECT_EQ(zp_grow_in_place(a, p, 16 << 20), 0);
	EXPECT_EQ(zp_usable_size(a, p), (size_t)16 << 20);
	EXPECT_EQ(t_stats(a).nr_free, 0);
	EXPECT_EQ(zp_arena_check(a), 0);
	EXPECT_EQ(zp_free(a, p), 0);
	zp_arena_destroy(a);
}

int main(int argc, char **argv)
{
	t_init(argc, argv);
	RUN(sizes_and_pages_in_use);
	RUN(bad_frees_change_nothing);
	RUN(zeroing_clears_only_what_is_kept);
	RUN(random_sizes_against_a_model);
	RUN(free_flags_cover_the_pages_kept);
	RUN(pieces_keep_their_zero_state);
	RUN(target_beyond_the_size_is_cleared_last);
	RUN(racing_double_free);
	RUN(grow_in_place_and_move);
	RUN(exact_above_merge_order);
	RUN(grow_in_place_over_a_merge_owed);
	return t_done("test_exact");
}
