/* SPDX-License-Identifier: MIT */
/*
 * buddy.c - the buddy free lists, split (expand) and merge.
 *
 * Free blocks are kept on a list per (order, state); state is the summary
 * of the block's pages (zero_state.c): ZEROED, DIRTY (any page dirty) or
 * REPORTED (every page handed back to the OS, known zero or not).  Choosing a block is
 * therefore O(orders x states) = O(1):
 *
 *   zeroing request:      ZEROED, then DIRTY (clear it), REPORTED last
 *   non-zeroing request:  DIRTY,  then ZEROED,           REPORTED last
 *
 * State comes first, order second: a zeroing request splits a larger zeroed
 * block rather than clear a smaller dirty one, and nobody touches memory
 * given back to the OS while resident memory is free.
 *
 * Buddy arithmetic, worked example: the buddy of the order-2 block at pfn
 * 12 is pfn 12 ^ (1 << 2) = 8; merged they form the order-3 block at
 * pfn 8 (the lower of the two).
 *
 *   pfn:  8  9 10 11 12 13 14 15
 *        [  order 2  ][  order 2  ]   ->   [        order 3         ]
 *
 * Splitting (expand) keeps the half whose state suits the request better
 * (lower half on a tie) and lists the other; nothing is copied because the
 * zero state is per page.
 *
 * Invariants (zp_arena_check()):
 *  - a listed block's head has PG_buddy, its order and its list's state,
 *    and the state equals zs_summary() of its pages;
 *  - no two free buddies of the same order are both on the lists;
 *  - a->cnt equals the sum of zs_count() over every listed block.
 *
 * Every function here expects a->lock held, and says so with
 * lock_assert_held() (checked in the ZPAGE_LOCKDEP build), except
 * buddy_may_have() (an unlocked hint) and list_add / list_del, which run
 * under whichever lock owns the list (the arena's, or a pcp's).
 */
#include "internal.h"

void list_add(struct zp_arena *a, struct free_list *l, uint32_t pfn, bool tail)
{
	struct page *p = &a->pages[pfn];

	if (tail) {
		p->next = NIL;
		p->prev = l->tail;
		if (l->tail != NIL)
			a->pages[l->tail].next = pfn;
		else
			l->head = pfn;
		l->tail = pfn;
	} else {
		p->prev = NIL;
		p->next = l->head;
		if (l->head != NIL)
			a->pages[l->head].prev = pfn;
		else
			l->tail = pfn;
		l->head = pfn;
	}
	l->nr++;
}

void list_del(struct zp_arena *a, struct free_list *l, uint32_t pfn)
{
	struct page *p = &a->pages[pfn];

	if (p->prev != NIL)
		a->pages[p->prev].next = p->next;
	else
		l->head = p->next;
	if (p->next != NIL)
		a->pages[p->next].prev = p->prev;
	else
		l->tail = p->prev;
	p->next = p->prev = NIL;
	l->nr--;
}

int state_rank(enum zstate st, bool want_zero)
{
	static const int rank[2][NR_ZSTATES] = {
		/* non-zeroing */ {[ZS_DIRTY] = 0, [ZS_ZEROED] = 1, [ZS_REPORTED] = 2},
		/* zeroing     */ {[ZS_ZEROED] = 0, [ZS_DIRTY] = 1, [ZS_REPORTED] = 2},
	};
	return rank[want_zero][st];
}

enum zstate state_of_rank(int r, bool want_zero)
{
	static const enum zstate by_rank[2][NR_ZSTATES] = {
		{ZS_DIRTY, ZS_ZEROED, ZS_REPORTED},
		{ZS_ZEROED, ZS_DIRTY, ZS_REPORTED},
	};
	return by_rank[want_zero][r];
}

/* List a free block by the summary of its pages; @c is its zs_count(). */
static void add_to_free_list(struct zp_arena *a, uint32_t pfn, unsigned order, const struct zcount *c)
{
	enum zstate st = zs_summary(c);

	lock_assert_held(&a->lock);
	pg_set_info(&a->pages[pfn], mk_info(PG_BUDDY, order, st));
	/* reported blocks go to the tail: the last choice even within a list */
	list_add(a, &a->free[order][st], pfn, st == ZS_REPORTED);
	zcount_add(&a->cnt, c);
	atomic_fetch_or_explicit(&a->nonempty[st], 1u << order, memory_order_relaxed);
}

void del_from_free_list(struct zp_arena *a, uint32_t pfn, unsigned order, enum zstate st)
{
	struct zcount c;

	lock_assert_held(&a->lock);
	zs_count(a, pfn, (size_t)1 << order, &c);
	list_del(a, &a->free[order][st], pfn);
	zcount_sub(&a->cnt, &c);
	if (!a->free[order][st].nr)
		atomic_fetch_and_explicit(&a->nonempty[st], ~(1u << order), memory_order_relaxed);
	pg_set_info(&a->pages[pfn], 0);
}

/*
 * Populate a fresh arena: the largest aligned blocks that fit, all zeroed
 * and reported (the OS zero-fills untouched anonymous memory).
 */
void buddy_init(struct zp_arena *a)
{
	lock_assert_held(&a->lock);

	for (unsigned o = 0; o < NR_ORDERS; o++)
		for (int s = 0; s < NR_ZSTATES; s++)
			list_init(&a->free[o][s]);
	zs_mark_reported(a, 0, a->nr_pages, true);
	for (size_t pfn = 0; pfn < a->nr_pages;) {
		unsigned o = a->max_order;
		struct zcount c;

		while (o && ((pfn & (((size_t)1 << o) - 1)) || pfn + ((size_t)1 << o) > a->nr_pages))
			o--;
		zs_count(a, pfn, (size_t)1 << o, &c);
		add_to_free_list(a, (uint32_t)pfn, o, &c);
		pfn += (size_t)1 << o;
	}
}

/* Does the upper half @hi suit @keep better than the lower half @lo? */
static bool keep_upper(enum expand_keep keep, const struct zcount *lo, const struct zcount *hi)
{
	if (keep == KEEP_CLEARABLE)
		return hi->dirty - hi->lazy > lo->dirty - lo->lazy;
	return state_rank(zs_summary(hi), keep == KEEP_FOR_ZERO) < state_rank(zs_summary(lo), keep == KEEP_FOR_ZERO);
}

/*
 * expand - split the block at @pfn (off the lists) from order @high down to
 * @low: at each halving keep the half that suits @keep (the lower one on a
 * tie) and list the other.  Returns the kept block of order @low, still off
 * the lists; nothing is copied since the zero state is per page.
 */
uint32_t expand(struct zp_arena *a, uint32_t pfn, unsigned high, unsigned low, enum expand_keep keep)
{
	lock_assert_held(&a->lock);

	while (high > low) {
		size_t half = (size_t)1 << --high;
		uint32_t lo = pfn, hi = (uint32_t)(pfn + half);
		struct zcount clo, chi;

		zs_count(a, lo, half, &clo);
		zs_count(a, hi, half, &chi);
		if (keep_upper(keep, &clo, &chi)) {
			add_to_free_list(a, lo, high, &clo);
			pfn = hi;
		} else {
			add_to_free_list(a, hi, high, &chi);
		}
	}
	return pfn;
}

/*
 * Take the best block of @order for the request, splitting a larger one if
 * needed.  Returns its head pfn with PG_busy set, or NIL.
 */
uint32_t rmqueue_smallest(struct zp_arena *a, unsigned order, bool want_zero, unsigned states)
{
	uint32_t pfn = NIL;
	unsigned o = order;

	lock_assert_held(&a->lock);
	for (int r = 0; r < NR_ZSTATES; r++) {
		enum zstate st = state_of_rank(r, want_zero);
		uint32_t m = atomic_load_explicit(&a->nonempty[st], memory_order_relaxed) >> order;

		if (!(states & (1u << st)) || !m)
			continue;
		o = order + (unsigned)__builtin_ctz(m);
		pfn = a->free[o][st].head;
		del_from_free_list(a, pfn, o, st);
		break;
	}
	if (pfn == NIL)
		return NIL;
	pfn = expand(a, pfn, o, order, want_zero ? KEEP_FOR_ZERO : KEEP_FOR_NONZERO);
	pg_set_info(&a->pages[pfn], mk_info(PG_BUSY, order, 0));
	note_alloc_block(a);
	return pfn;
}

/* Unlocked hint: is there probably a block of @order or larger in state @st? */
bool buddy_may_have(struct zp_arena *a, unsigned order, enum zstate st)
{
	return atomic_load_explicit(&a->nonempty[st], memory_order_relaxed) >> order;
}

/*
 * Give a block (its head PG_busy, or just taken off a pcp list) back to the
 * buddy lists, merging with free buddies as far as they go.
 */
void free_one_page(struct zp_arena *a, uint32_t pfn, unsigned order)
{
	struct zcount c;

	lock_assert_held(&a->lock);
	while (order < a->max_order) {
		uint32_t buddy = pfn ^ ((uint32_t)1 << order);
		uint32_t bi;

		if ((size_t)buddy + ((size_t)1 << order) > a->nr_pages)
			break;
		bi = pg_info(&a->pages[buddy]);
		if ((bi & PG_OWNER_MASK) != PG_BUDDY || pg_order(bi) != order)
			break;
		del_from_free_list(a, buddy, order, pg_state(bi));
		pg_set_info(&a->pages[pfn], 0);
		pfn &= buddy;
		order++;
	}
	zs_count(a, pfn, (size_t)1 << order, &c);
	add_to_free_list(a, pfn, order, &c);
	note_free_block(a, pfn, order);
}

size_t zp_test_nr_free_blocks(struct zp_arena *a, unsigned order, enum zstate st)
{
	size_t n;

	zlock_lock(&a->lock);
	n = a->free[order][st].nr;
	zlock_unlock(&a->lock);
	return n;
}
