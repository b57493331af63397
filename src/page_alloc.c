/* SPDX-License-Identifier: MIT */
/*
 * page_alloc.c - the allocation and free paths.
 *
 * Allocation, as in Linux, with the caller's address carried all the way
 * down to the place that initialises memory at allocation time:
 *
 *   zp_alloc_pages(a, gfp, order, user_addr)
 *     -> struct alloc_context ac     (the request, passed by const pointer)
 *     -> get_page_from_freelist(&ac) thread's cache or buddy lists; on
 *                                    failure alloc_pages_slowpath(&ac)
 *     -> prep_new_page(&ac, pfn)
 *        -> post_alloc_hook(&ac, pfn) initialises memory for a zeroing request
 *
 * Memory is also cleared, always through clear.c, at free time with
 * ZP_INIT_ON_FREE (free_pages_prepare()) and ahead of demand by
 * pre-zeroing (report.c); those pages are then known zero, and
 * post_alloc_hook skips them.
 *
 * post_alloc_hook's decision, per allocation:
 *
 *   wants zero (ZP_GFP_ZERO      pages' state           action
 *   or ZP_INIT_ON_ALLOC)
 *   no                           any                    nothing
 *   yes                          all known zero         nothing (count skipped)
 *   yes                          some dirty, user_addr  clear the dirty pages,
 *                                                       target page last
 *   yes                          some dirty, NONE       clear the dirty pages,
 *                                                       fastest bulk order
 *
 * then it drops the zeroed/reported bits of the whole block: from now on its
 * content is the caller's.
 *
 * Free mirrors it: zp_free_pages() validates the pointer by one atomic
 * compare-and-swap of the head's info word (PG_alloc|order -> PG_busy|order),
 * so a foreign, misaligned, tail, wrong-order or double free is refused
 * with -EINVAL before anything changes, even when two threads race to free
 * the same block; free_pages_prepare() applies init_on_free / poisoning;
 * then the block goes to the thread's cache or the buddy lists.
 *
 * Invariant: a page handed out for a zeroing request reads as zero, and the
 * library cleared it at most once since it was last dirtied; never when its
 * zero bit said it was already zero.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define POISON_BYTE 0xaa

/*
 * The request.  None of its fields change on the slow path (drain the
 * threads' caches, then retry).
 */
struct alloc_context {
	struct zp_arena *arena;
	unsigned order;
	uintptr_t user_addr; /* ZP_USER_ADDR_NONE: no address */
	bool want_zero;	     /* ZP_GFP_ZERO, or the arena's init_on_alloc */
};

bool page_reads_zero(const struct zp_arena *a, size_t pfn)
{
	const uint64_t *w = (const uint64_t *)pfn_to_addr(a, pfn);
	uint64_t acc = 0;

	for (size_t i = 0; i < ZP_PAGE_SIZE / sizeof(*w); i++)
		acc |= w[i];
	return acc == 0;
}

/* ZP_VERIFY: a page marked zero that does not read zero is reported, counted
 * and demoted to dirty, so the clear below fixes it. */
static void verify_zero_pages(struct zp_arena *a, size_t pfn, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!zs_test_zero(a, pfn + i) || page_reads_zero(a, pfn + i))
			continue;
		fprintf(stderr, "zpage: verify: page %zu at %p is marked zero but is not (written after free?)\n",
			pfn + i, (void *)pfn_to_addr(a, pfn + i));
		zs_unzero(a, pfn + i);
		stat_add(&a->verify_failures, 1);
	}
}

/* The block and, in @c, the counts of its pages (they cannot change while
 * the block is in flight: post_alloc_hook needs them); c->pages = 0 from a
 * thread's cache, whose small blocks post_alloc_hook counts itself. */
static uint32_t get_page_from_freelist(const struct alloc_context *ac, struct zcount *c)
{
	struct zp_arena *a = ac->arena;
	uint32_t pfn;

	if (tc_serves(a, ac->order)) {
		c->pages = 0;
		return rmqueue_tcache(a, ac->order, ac->want_zero);
	}
	zlock_lock(&a->lock);
	pfn = rmqueue_smallest(a, ac->order, ac->want_zero, ALL_STATES, c);
	zlock_unlock(&a->lock);
	return pfn;
}

/*
 * Nothing found on the fast path.  Take every lock (lock_all(): tc_lock
 * with every thread's cache quiesced, then the arena lock), empty every
 * cache into the buddy lists and retry with all of them still held, so
 * that no thread can refill its cache in between.  Blocks a report or pre-zero pass holds are free too: wait for
 * the pass to put them back, then try again.  So ENOMEM means that at one
 * instant no free block of the order existed anywhere in the arena.
 */
static uint32_t alloc_pages_slowpath(const struct alloc_context *ac, struct zcount *c)
{
	struct zp_arena *a = ac->arena;

	for (;;) {
		uint32_t pfn;
		bool passes;

		lock_all(a);
		drain_all_pages_locked(a);
		pfn = rmqueue_smallest(a, ac->order, ac->want_zero, ALL_STATES, c);
		passes = a->isolated_pages != 0;
		unlock_all(a);
		if (pfn != NIL || !passes)
			return pfn;
		zlock_lock(&a->lock);
		if (a->isolated_pages)
			wait_for_isolated(a);
		zlock_unlock(&a->lock);
	}
}

static void post_alloc_hook(const struct alloc_context *ac, uint32_t pfn, const struct zcount *cin)
{
	struct zp_arena *a = ac->arena;
	size_t n = (size_t)1 << ac->order;
	const struct zcount *c = cin;
	struct zcount small;

	if (!cin->pages) { /* a small block from a thread's cache */
		if (!ac->want_zero && zs_small_all_dirty(a, pfn, ac->order))
			return; /* nothing to count, clear or record: the usual case */
		zs_count(a, pfn, n, &small);
		c = &small;
	}
	if (c->reported || ac->want_zero) {
		bool shared;
		struct tc_stats *st = tc_stats_here(a, &shared);

		tstat_add(&st->refaulted, c->reported, shared);
		if (ac->want_zero) {
			size_t cleared;

			if (a->flags & ZP_VERIFY)
				verify_zero_pages(a, pfn, n);
			cleared = clear_dirty_pages(a, pfn, ac->order, ac->user_addr);
			tstat_add(&st->cleared, cleared, shared);
			tstat_add(&st->skipped, n - cleared, shared);
		}
	}
	if (c->dirty != n || c->reported) /* else both bits are set already */
		zs_clear(a, pfn, n);
}

static void prep_new_page(const struct alloc_context *ac, uint32_t pfn, const struct zcount *c)
{
	post_alloc_hook(ac, pfn, c);
	pg_set_info(&ac->arena->pages[pfn], mk_info(PG_ALLOC, ac->order, 0));
}

void *zp_alloc_pages(struct zp_arena *a, zp_gfp_t gfp, unsigned int order, uintptr_t user_addr)
{
	struct zcount c;
	uint32_t pfn;

	if (!a || (gfp & ~ZP_GFP_ZERO) || order > a->max_order) {
		errno = EINVAL;
		return NULL;
	}

	const struct alloc_context ac = {
		.arena = a,
		.order = order,
		.user_addr = user_addr,
		.want_zero = (gfp & ZP_GFP_ZERO) || (a->flags & ZP_INIT_ON_ALLOC),
	};

	daemon_ensure(a);
	pfn = get_page_from_freelist(&ac, &c);
	if (pfn == NIL)
		pfn = alloc_pages_slowpath(&ac, &c);
	if (pfn == NIL) {
		errno = ENOMEM;
		return NULL;
	}
	prep_new_page(&ac, pfn, &c);
	return pfn_to_addr(a, pfn);
}

static void free_pages_prepare(struct zp_arena *a, uint32_t pfn, unsigned order)
{
	if (a->flags & ZP_INIT_ON_FREE) { /* all of it: allocated pages are dirty */
		bool shared;
		struct tc_stats *st = tc_stats_here(a, &shared);

		tstat_add(&st->cleared, clear_dirty_free_block(a, pfn, order), shared);
	}
	else if (a->flags & ZP_VERIFY)
		memset(pfn_to_addr(a, pfn), POISON_BYTE, ZP_PAGE_SIZE << order);
}

int zp_free_pages(struct zp_arena *a, void *addr, unsigned int order)
{
	uintptr_t base, off;
	uint32_t pfn, expect;

	if (!a || !addr || order > a->max_order)
		return -EINVAL;
	base = (uintptr_t)a->base;
	off = (uintptr_t)addr - base;
	if ((uintptr_t)addr < base || off >= (a->nr_pages << ZP_PAGE_SHIFT))
		return -EINVAL;
	if (off & ((ZP_PAGE_SIZE << order) - 1))
		return -EINVAL;
	pfn = (uint32_t)(off >> ZP_PAGE_SHIFT);
	if ((size_t)pfn + ((size_t)1 << order) > a->nr_pages)
		return -EINVAL;

	expect = mk_info(PG_ALLOC, order, 0);
	if (!atomic_compare_exchange_strong_explicit(&a->pages[pfn].info, &expect, mk_info(PG_BUSY, order, 0),
						     memory_order_acq_rel, memory_order_acquire))
		return -EINVAL;

	daemon_ensure(a);
	free_pages_prepare(a, pfn, order);
	if (tc_serves(a, order)) {
		free_tcache(a, pfn, order);
	} else {
		zlock_lock(&a->lock);
		free_one_page(a, pfn, order);
		zlock_unlock(&a->lock);
	}
	return 0;
}
