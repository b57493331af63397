/* SPDX-License-Identifier: MIT */
/*
 * pcp.c - per-CPU caches of small free blocks (orders 0..PCP_MAX_ORDER).
 *
 * Each CPU (os_cpu_current(), modulo the number of caches) has a cache with
 * its own lock and its own lists per (order, state), so small allocations
 * and frees mostly avoid the arena lock, and zero state is kept: a cache
 * never forgets which of its pages are known zero.
 *
 * Allocation follows the same state preference as the buddy lists
 * (buddy.c).  For each state in preference order: take from this cache's
 * list if it has one; otherwise, if the buddy lists probably have a block
 * of that state (an unlocked hint), refill a batch of that state under the
 * arena lock.  So a zeroing request never clears a cached dirty page while
 * known-zero memory is free, and a cache that holds only dirty pages does
 * not take the arena lock on every zeroing allocation when none is zero.
 *
 * A cache above PCP_HIGH_PAGES after a free gives its largest lists' oldest
 * blocks back to the buddy lists until it is PCP_BATCH_PAGES below the mark.
 * When an allocation finds nothing, the slow path (page_alloc.c) takes every
 * cache's lock and the arena lock, empties every cache into the buddy lists
 * (merging) and retries while still holding them all, so no other CPU can
 * refill its cache in between: every page of the arena can be obtained, by
 * any order, under any concurrency.
 *
 * The caches serve orders below min(PCP_MAX_ORDER + 1, max_order + 1,
 * report_order): a block of report_order or larger must sit on the buddy
 * lists, where a reporting pass can find it.
 *
 * Lock order: pcp locks in index order, then the arena lock.  Never take a
 * pcp lock while holding the arena lock.
 *
 * Invariants (zp_arena_check()): a cached block's head has PG_pcp, its order
 * and its list's state, which equals zs_summary() of its pages; each cache's
 * cnt equals the sum of zs_count() over its blocks.
 */
#include <stdlib.h>

#include "internal.h"

#define PCP_BATCH_PAGES 16
#define PCP_HIGH_PAGES	256
#define PCP_MAX_CACHES	1024

/* How many orders the caches serve: 0..pcp_nr_orders() - 1. */
static unsigned pcp_nr_orders(const struct zp_arena *a)
{
	unsigned n = PCP_MAX_ORDER + 1;

	if (n > a->max_order + 1)
		n = a->max_order + 1;
	if (n > a->report_order)
		n = a->report_order;
	return n;
}

int pcp_init(struct zp_arena *a)
{
	unsigned n = os_cpu_count();
	pthread_mutexattr_t at;

	if (n > PCP_MAX_CACHES)
		n = PCP_MAX_CACHES;
	if (posix_memalign((void **)&a->pcp, 64, (size_t)n * sizeof(*a->pcp)))
		return -1;
	a->nr_pcp = n;
	a->pcp_orders = pcp_nr_orders(a);
	/* adaptive: a waiter spins briefly, then sleeps (a cache's lock is held
	 * across the arena lock by refills and drains, and by lock_all) */
	pthread_mutexattr_init(&at);
	pthread_mutexattr_settype(&at, PTHREAD_MUTEX_ADAPTIVE_NP);
	for (unsigned i = 0; i < a->nr_pcp; i++) {
		struct pcp *pcp = &a->pcp[i];

		zlock_init(&pcp->lock, &at);
		for (unsigned o = 0; o <= PCP_MAX_ORDER; o++)
			for (int s = 0; s < NR_ZSTATES; s++)
				list_init(&pcp->lists[o][s]);
		pcp->cnt = (struct zcount){0};
		atomic_init(&pcp->stats.cleared, 0);
		atomic_init(&pcp->stats.skipped, 0);
		atomic_init(&pcp->stats.refaulted, 0);
	}
	pthread_mutexattr_destroy(&at);
	return 0;
}

void pcp_destroy(struct zp_arena *a)
{
	for (unsigned i = 0; i < a->nr_pcp; i++)
		zlock_destroy(&a->pcp[i].lock);
	free(a->pcp);
	a->pcp = NULL;
}

static struct pcp *this_pcp(struct zp_arena *a)
{
	return &a->pcp[os_cpu_current() % a->nr_pcp];
}

struct pcp_stats *pcp_stats_here(struct zp_arena *a)
{
	return &this_pcp(a)->stats;
}

/* Put a free block (head PG_busy or fresh from the buddy) in @pcp. */
static void pcp_add(struct zp_arena *a, struct pcp *pcp, uint32_t pfn, unsigned order)
{
	struct zcount c;
	enum zstate st;

	lock_assert_held(&pcp->lock);
	zs_count(a, pfn, (size_t)1 << order, &c);
	st = zs_summary(&c);
	pg_set_info(&a->pages[pfn], mk_info(PG_PCP, order, st));
	list_add(a, &pcp->lists[order][st], pfn, false);
	zcount_add(&pcp->cnt, &c);
}

/* Take @pfn off @pcp; its head becomes PG_busy.  Its counts into @c. */
static void pcp_del(struct zp_arena *a, struct pcp *pcp, uint32_t pfn, struct zcount *c)
{
	uint32_t info = pg_info(&a->pages[pfn]);
	unsigned order = pg_order(info);

	lock_assert_held(&pcp->lock);
	zs_count(a, pfn, (size_t)1 << order, c);
	list_del(a, &pcp->lists[order][pg_state(info)], pfn);
	zcount_sub(&pcp->cnt, c);
	pg_set_info(&a->pages[pfn], mk_info(PG_BUSY, order, 0));
}

/* Refill @pcp with up to a batch of @order blocks in state @st.  pcp locked. */
static void pcp_refill(struct zp_arena *a, struct pcp *pcp, unsigned order, enum zstate st, bool want_zero)
{
	unsigned batch = PCP_BATCH_PAGES >> order;

	lock_assert_held(&pcp->lock);
	zlock_lock(&a->lock);
	for (unsigned got = 0; got < (batch ? batch : 1); got++) {
		uint32_t pfn = rmqueue_smallest(a, order, want_zero, 1u << st, NULL);

		if (pfn == NIL)
			break;
		pcp_add(a, pcp, pfn, order);
	}
	zlock_unlock(&a->lock);
}

uint32_t rmqueue_pcplist(struct zp_arena *a, unsigned order, bool want_zero, struct zcount *c)
{
	struct pcp *pcp = this_pcp(a);
	uint32_t pfn = NIL;

	lock_assert_not_held(&a->lock); /* lock order: pcp, then arena */
	zlock_lock(&pcp->lock);
	for (int r = 0; r < NR_ZSTATES && pfn == NIL; r++) {
		enum zstate st = state_of_rank(r, want_zero);
		struct free_list *l = &pcp->lists[order][st];

		if (!l->nr && buddy_may_have(a, order, st))
			pcp_refill(a, pcp, order, st, want_zero);
		if (l->nr) {
			pfn = l->head;
			pcp_del(a, pcp, pfn, c);
		}
	}
	zlock_unlock(&pcp->lock);
	return pfn;
}

/* Give blocks back to the buddy lists until @pcp holds at most @target
 * pages.  pcp locked, arena lock held. */
static void pcp_drain(struct zp_arena *a, struct pcp *pcp, size_t target)
{
	lock_assert_held(&pcp->lock);
	lock_assert_held(&a->lock);

	while (pcp->cnt.pages > target) {
		struct free_list *best = NULL;
		size_t best_pages = 0;
		struct zcount c;
		uint32_t pfn;
		unsigned order = 0;

		for (unsigned o = 0; o <= PCP_MAX_ORDER; o++) {
			for (int s = 0; s < NR_ZSTATES; s++) {
				size_t pages = pcp->lists[o][s].nr << o;

				if (pages > best_pages) {
					best = &pcp->lists[o][s];
					best_pages = pages;
					order = o;
				}
			}
		}
		pfn = best->tail; /* the coldest */
		pcp_del(a, pcp, pfn, &c);
		free_one_page(a, pfn, order);
	}
}

void free_pcp(struct zp_arena *a, uint32_t pfn, unsigned order)
{
	struct pcp *pcp = this_pcp(a);

	lock_assert_not_held(&a->lock);
	zlock_lock(&pcp->lock);
	pcp_add(a, pcp, pfn, order);
	if (pcp->cnt.pages > PCP_HIGH_PAGES) {
		zlock_lock(&a->lock);
		pcp_drain(a, pcp, PCP_HIGH_PAGES - PCP_BATCH_PAGES);
		zlock_unlock(&a->lock);
	}
	zlock_unlock(&pcp->lock);
}

void drain_all_pages(struct zp_arena *a)
{
	for (unsigned i = 0; i < a->nr_pcp; i++) {
		struct pcp *pcp = &a->pcp[i];

		lock_assert_not_held(&a->lock);
		zlock_lock(&pcp->lock);
		if (pcp->cnt.pages) {
			zlock_lock(&a->lock);
			pcp_drain(a, pcp, 0);
			zlock_unlock(&a->lock);
		}
		zlock_unlock(&pcp->lock);
	}
}

void drain_all_pages_locked(struct zp_arena *a)
{
	lock_assert_all_held(a);
	for (unsigned i = 0; i < a->nr_pcp; i++)
		pcp_drain(a, &a->pcp[i], 0);
}

bool pcp_serves(const struct zp_arena *a, unsigned order)
{
	return order < a->pcp_orders;
}

void zp_test_set_pcp(struct zp_arena *a, bool on)
{
	a->pcp_orders = on ? pcp_nr_orders(a) : 0;
}

void zp_test_drain_pcp(struct zp_arena *a)
{
	drain_all_pages(a);
}

void lock_all(struct zp_arena *a)
{
	lock_assert_not_held(&a->lock);
	for (unsigned i = 0; i < a->nr_pcp; i++)
		zlock_lock(&a->pcp[i].lock);
	zlock_lock(&a->lock);
}

void unlock_all(struct zp_arena *a)
{
	zlock_unlock(&a->lock);
	for (unsigned i = a->nr_pcp; i-- > 0;)
		zlock_unlock(&a->pcp[i].lock);
}
