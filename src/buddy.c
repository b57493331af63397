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
 * Cost independent of block size: the counts of every node of the buddy
 * tree of order NODE_MIN_ORDER or more inside a listed block are kept in
 * the link fields of tail descriptors (the summary tree, below), so
 * listing, unlisting, merging and splitting never scan a block; a freed
 * block's nodes are rebuilt once, at a cost linear in the block.
 *
 * Merging waits from merge_order up (PAGEBLOCK_ORDER, 2 MiB, or report_order
 * if larger, or max_order if smaller): free_one_page() merges a freed block
 * with its free buddies only up to that order.  At each order from there
 * up, at most one pair of buddies is both listed: the merge owed there
 * (a->owed[order], its lower half).  When a second pair forms at an order,
 * the older one merges at once, which may owe the next order a merge (the
 * same rule, one level up); when a half of the owed pair leaves its list,
 * nothing is owed.  A request of order k above merge_order first makes the
 * merges owed below k, lowest first (coalesce()), and so does a grow in
 * place (zp_grow_in_place()).  A free makes at most one merge per order, as
 * eager merging would; a request's merges can each start such a chain, so
 * at most (levels above merge_order)^2 of them, about a hundred at
 * max_order 20; usually none: in the steady state an order-4 split and
 * merge crosses the same 5 levels (4 to 9) whether the arena's largest
 * block is order 10 or 20, the pair at order 9 forming and parting at no
 * cost.  A request above merge_order sees every pair below its order
 * merged (the zero-aware preference sees a zeroed pair as a zeroed block).
 *
 * Never-used memory is not listed at creation: pages at or above
 * a->frontier are zeroed and reported and belong to no block yet.  When a
 * request finds no block, the next largest aligned block at the frontier
 * is listed (carve_frontier()), so creating even a 1 TiB arena writes no
 * descriptor.
 *
 * Invariants (zp_arena_check()):
 *  - a listed block's head has PG_buddy, its order and its list's state,
 *    and the state equals zs_summary() of its pages;
 *  - inside a listed block, every node whose ancestors within the block
 *    are mixed holds the zs_count() of its pages (below a uniform node the
 *    slots are not kept: its pages are known);
 *  - no two free buddies of the same order are both on the lists, except
 *    at most one pair at each order of merge_order or more: a->owed[order];
 *  - a->cnt equals the sum of zs_count() over every listed block;
 *  - every page at or above a->frontier has info 0 and the zero state of
 *    fresh memory.
 *
 * Every function here that touches the lists expects a->lock held and says
 * so with lock_assert_held() (checked in the ZPAGE_LOCKDEP build), except
 * list_add / list_del, which run under whichever lock owns the list (the
 * arena's, or a thread's cache), and zp_test_nr_free_blocks(), which takes
 * it; the unlocked hints buddy_may_have() and frontier_pages() are inline in
 * internal.h.  The rank
 * helpers touch no state.
 */
#include "internal.h"

int state_rank(enum zstate st, bool want_zero)
{
	static const int rank[2][NR_ZSTATES] = {
		/* non-zeroing */ {[ZS_DIRTY] = 0, [ZS_ZEROED] = 1, [ZS_REPORTED] = 2},
		/* zeroing     */ {[ZS_ZEROED] = 0, [ZS_DIRTY] = 1, [ZS_REPORTED] = 2},
	};
	return rank[want_zero][st];
}

/*
 * The summary tree.  Every aligned block of order >= NODE_MIN_ORDER (a
 * "node" of the buddy tree) has a slot: the link fields of the last page of
 * its lower half (pfn + 2^(order-1) - 1), distinct for every node and never
 * a head of a block of that size or more.  A slot holds the node's counts
 * as three 21-bit numbers: pages not known zero (pd), resident pages (pr)
 * and both (pdr); all zero is fresh memory (zeroed and reported), so the
 * untouched metadata above the frontier is already right.
 *
 * A node whose pages are all in one state ("uniform": all zeroed, all
 * dirty, ...) has halves with half its counts each, so nothing below it is
 * kept.  Invariant: inside a listed buddy block, every node whose ancestors
 * (within the block) are all mixed has its slot right, the block itself
 * included.  Nothing changes the bits of a listed block, so splitting keeps
 * its halves right; a freed block (its bits changed while it was allocated
 * or isolated) is counted once, and only if it is mixed are its nodes
 * rebuilt (subtree_build()); every merge stores the node it forms.
 * Smaller blocks fit in one bitmap word and are counted from the bits.  So
 * listing, unlisting, merging and splitting cost the same at any order.
 */
#define SLOT_BITS 21
#define SLOT_MASK      ((1ull << SLOT_BITS) - 1)

static struct page *slot(struct zp_arena *a, uint32_t pfn, unsigned order)
{
	return &a->pages[pfn + ((uint32_t)1 << (order - 1)) - 1];
}

static void node_store(struct zp_arena *a, uint32_t pfn, unsigned order, const struct zcount *c)
{
	uint64_t pd = c->dirty, pr = c->pages - c->reported, pdr = c->dirty - c->lazy;
	uint64_t v = pr | pd << SLOT_BITS | pdr << (2 * SLOT_BITS);
	struct page *s = slot(a, pfn, order);

	s->next = (uint32_t)v;
	s->prev = (uint32_t)(v >> 32);
}

static void node_load(const struct zp_arena *a, uint32_t pfn, unsigned order, struct zcount *c)
{
	const struct page *s = &a->pages[pfn + ((uint32_t)1 << (order - 1)) - 1];
	uint64_t v = s->next | (uint64_t)s->prev << 32;
	size_t n = (size_t)1 << order, pr = v & SLOT_MASK, pd = (v >> SLOT_BITS) & SLOT_MASK;
	size_t pdr = (v >> (2 * SLOT_BITS)) & SLOT_MASK;

	c->pages = n;
	c->dirty = pd;
	c->reported = n - pr;
	c->zeroed = pr - pdr;
	c->lazy = pd - pdr;
}

/* The counts of a block whose nodes are right (listed, or inside one). */
void block_count(const struct zp_arena *a, uint32_t pfn, unsigned order, struct zcount *c)
{
	if (order < NODE_MIN_ORDER)
		zs_count(a, pfn, (size_t)1 << order, c);
	else
		node_load(a, pfn, order, c);
}

static void halve(struct zcount *c)
{
	c->pages /= 2;
	c->zeroed /= 2;
	c->reported /= 2;
	c->dirty /= 2;
	c->lazy /= 2;
}

/* The counts of the node at @pfn from its bits; the slots of its children
 * (and, recursively, of theirs) stored where the node is mixed. */
static void nodes_build(struct zp_arena *a, uint32_t pfn, unsigned order, struct zcount *c)
{
	struct zcount lo, hi;

	if (order <= NODE_MIN_ORDER) { /* its children have no slots */
		zs_count(a, pfn, (size_t)1 << order, c);
		return;
	}
	nodes_build(a, pfn, order - 1, &lo);
	nodes_build(a, pfn + ((uint32_t)1 << (order - 1)), order - 1, &hi);
	*c = lo;
	zcount_add(c, &hi);
	if (!zcount_uniform(c)) { /* mixed: its children are read */
		node_store(a, pfn, order - 1, &lo);
		node_store(a, pfn + ((uint32_t)1 << (order - 1)), order - 1, &hi);
	}
}

/* A freed block: its counts into @c, and the slots of its nodes right
 * (its own included).  One sequential count; a rebuild only if mixed. */
static void subtree_build(struct zp_arena *a, uint32_t pfn, unsigned order, struct zcount *c)
{
	zs_count(a, pfn, (size_t)1 << order, c);
	if (order < NODE_MIN_ORDER)
		return;
	if (!zcount_uniform(c))
		nodes_build(a, pfn, order, c);
	node_store(a, pfn, order, c);
}

/* The buddy of the block (@pfn, @order) if it is listed whole, at @order
 * too; else NIL. */
static uint32_t listed_buddy(const struct zp_arena *a, uint32_t pfn, unsigned order)
{
	uint32_t buddy = pfn ^ ((uint32_t)1 << order), bi;

	if (order >= a->max_order || (size_t)buddy + ((size_t)1 << order) > a->nr_pages)
		return NIL;
	bi = pg_info(&a->pages[buddy]);
	return (bi & PG_OWNER_MASK) == PG_BUDDY && pg_order(bi) == order ? buddy : NIL;
}

static void merge_listed(struct zp_arena *a, uint32_t pfn, uint32_t buddy, unsigned order);

/* A pair of listed buddies of @order (merge_order or more) has formed at
 * @pfn: make the merge owed at that order, if any, and owe this one. */
static void merge_owe(struct zp_arena *a, uint32_t pfn, unsigned order)
{
	uint32_t old = a->owed[order];

	if (old != NIL) /* it may owe the next order one: the same rule there */
		merge_listed(a, old, old + ((uint32_t)1 << order), order);
	a->owed[order] = pfn;
}

/* List a free block by the summary of its pages; @c is its zs_count(). */
/* Only the arena lock's holder writes the hints (others only read them), so
 * a load and a store do: no atomic read-modify-write, two of which per level
 * made a third of a split or merge. */
static inline void nonempty_set(struct zp_arena *a, enum zstate st, unsigned order, bool on)
{
	uint32_t v = atomic_load_explicit(&a->nonempty[st], memory_order_relaxed);
	uint32_t w = on ? v | (1u << order) : v & ~(1u << order);

	if (w != v)
		atomic_store_explicit(&a->nonempty[st], w, memory_order_relaxed);
}

static void add_to_free_list(struct zp_arena *a, uint32_t pfn, unsigned order, const struct zcount *c,
			     uint16_t stamp)
{
	enum zstate st = zs_summary(c);

	lock_assert_held(&a->lock);
	if (order >= NODE_MIN_ORDER)
		node_store(a, pfn, order, c);
	pg_set_info(&a->pages[pfn], mk_info(PG_BUDDY, order, st) | (uint32_t)stamp << PG_STAMP_SHIFT);
	/* reported blocks go to the tail: the last choice even within a list */
	list_add(a, &a->free[order][st], pfn, st == ZS_REPORTED);
	zcount_add(&a->cnt, c);
	nonempty_set(a, st, order, true);
	if (order >= a->merge_order) {
		uint32_t buddy = listed_buddy(a, pfn, order);

		if (buddy != NIL)
			merge_owe(a, pfn & buddy, order);
	}
}

void del_from_free_list(struct zp_arena *a, uint32_t pfn, unsigned order, enum zstate st, struct zcount *out)
{
	struct zcount c;

	lock_assert_held(&a->lock);
	if (order >= a->merge_order && a->owed[order] == (pfn & ~((uint32_t)1 << order)))
		a->owed[order] = NIL; /* the owed pair parts */
	block_count(a, pfn, order, &c);
	list_del(a, &a->free[order][st], pfn);
	zcount_sub(&a->cnt, &c);
	if (out)
		*out = c;
	if (!a->free[order][st].nr)
		nonempty_set(a, st, order, false);
	pg_set_info(&a->pages[pfn], 0);
}

/* A fresh arena: empty lists, every page beyond the frontier (at 0). */
void buddy_init(struct zp_arena *a)
{
	lock_assert_held(&a->lock);
	for (unsigned o = 0; o < NR_ORDERS; o++)
		for (int s = 0; s < NR_ZSTATES; s++)
			list_init(&a->free[o][s]);
	for (unsigned o = 0; o < NR_ORDERS; o++)
		a->owed[o] = NIL;
	atomic_store_explicit(&a->frontier, 0, memory_order_relaxed);
}

/*
 * List the next block of never-used memory: the largest aligned block that
 * fits at the frontier, zeroed and reported (the OS zero-fills untouched
 * anonymous memory; its metadata is all zero).  False when none is left.
 */
static bool carve_frontier(struct zp_arena *a)
{
	size_t pfn = atomic_load_explicit(&a->frontier, memory_order_relaxed);
	unsigned o = a->max_order;
	struct zcount c = {0};

	lock_assert_held(&a->lock);
	if (pfn >= a->nr_pages)
		return false;
	while (o && ((pfn & (((size_t)1 << o) - 1)) || pfn + ((size_t)1 << o) > a->nr_pages))
		o--;
	c.pages = c.reported = (size_t)1 << o;
	atomic_store_explicit(&a->frontier, pfn + c.pages, memory_order_relaxed);
	add_to_free_list(a, (uint32_t)pfn, o, &c, 0); /* never used: not warm */
	return true;
}

/* Does the upper half @hi suit @keep better than the lower half @lo? */
static bool keep_upper(enum expand_keep keep, const struct zcount *lo, const struct zcount *hi)
{
	if (keep == KEEP_CLEARABLE)
		return hi->dirty - hi->lazy > lo->dirty - lo->lazy;
	return state_rank(zs_summary(hi), keep == KEEP_FOR_ZERO) < state_rank(zs_summary(lo), keep == KEEP_FOR_ZERO);
}

/*
 * expand - split the block at @pfn (off the lists, its counts in @c) from
 * order @high down to @low: at each halving keep the half that suits @keep
 * (the lower one on a tie) and list the other.  Returns the kept block of
 * order @low, still off the lists, and its counts in @c; nothing is copied
 * since the zero state is per page.  The lower half's counts come from its
 * slot (or its bitmap word) and the upper half's are the difference.  The
 * halves listed keep the block's warmth @stamp.
 */
uint32_t expand(struct zp_arena *a, uint32_t pfn, unsigned high, unsigned low, enum expand_keep keep,
		struct zcount *c, uint16_t stamp)
{
	lock_assert_held(&a->lock);
	while (high > low) {
		uint32_t lo = pfn, hi = pfn + ((uint32_t)1 << --high);
		struct zcount clo = *c, chi = *c;

		if (zcount_uniform(c)) {
			halve(&clo);
			halve(&chi);
		} else {
			block_count(a, lo, high, &clo); /* its parent is mixed: its slot is right */
			zcount_sub(&chi, &clo);
		}
		if (keep_upper(keep, &clo, &chi)) {
			add_to_free_list(a, lo, high, &clo, stamp);
			pfn = hi;
			*c = chi;
		} else {
			add_to_free_list(a, hi, high, &chi, stamp);
			*c = clo;
		}
	}
	return pfn;
}

/* Merge the listed blocks @pfn and its buddy @buddy, both of @order, into
 * one of order + 1 (free_one_page()'s rule for its warmth). */
static void merge_listed(struct zp_arena *a, uint32_t pfn, uint32_t buddy, unsigned order)
{
	uint32_t i = pg_info(&a->pages[pfn]), bi = pg_info(&a->pages[buddy]);
	uint16_t s = pg_stamp(i), sb = pg_stamp(bi);
	struct zcount c, cb;

	del_from_free_list(a, pfn, order, pg_state(i), &c);
	del_from_free_list(a, buddy, order, pg_state(bi), &cb);
	if (!c.dirty)
		s = cb.dirty ? sb : 0;
	else if (cb.dirty)
		s = warm_older(a, s, sb);
	zcount_add(&c, &cb);
	add_to_free_list(a, pfn & buddy, order + 1, &c, s);
}

/*
 * coalesce - make the merges owed below @order, lowest first; each may owe
 * the next order one, made in its turn if that is below @order too.
 * Afterwards no two buddies below @order are both listed, so every free
 * aligned block of @order or less lies inside one listed block.
 */
void coalesce(struct zp_arena *a, unsigned order)
{
	lock_assert_held(&a->lock);
	for (unsigned o = a->merge_order; o < order; o++) {
		uint32_t pfn = a->owed[o];

		if (pfn != NIL)
			merge_listed(a, pfn, pfn + ((uint32_t)1 << o), o);
	}
}

/*
 * Take the best block of @order for the request, splitting a larger one if
 * needed.  Returns its head pfn with PG_busy set, or NIL; its counts into
 * @out unless NULL, and into @warm unless NULL whether a zeroing request's
 * block is warm (clear.c; false for a request that does not zero).
 */
uint32_t rmqueue_smallest(struct zp_arena *a, unsigned order, bool want_zero, unsigned states, struct zcount *out,
			  bool *warm)
{
	uint32_t pfn = NIL;
	unsigned o = order;
	uint16_t stamp = 0;

	struct zcount c;

	lock_assert_held(&a->lock);
	if (order > a->merge_order)
		coalesce(a, order);
	for (int r = 0; r < NR_ZSTATES; r++) {
		enum zstate st = state_of_rank(r, want_zero);
		uint32_t m;

		if (!(states & (1u << st)))
			continue;
		m = atomic_load_explicit(&a->nonempty[st], memory_order_relaxed) >> order;
		/* never-used memory is reported memory: list some when none is */
		while (!m && st == ZS_REPORTED && carve_frontier(a))
			m = atomic_load_explicit(&a->nonempty[st], memory_order_relaxed) >> order;
		if (!m)
			continue;
		o = order + (unsigned)__builtin_ctz(m);
		pfn = a->free[o][st].head;
		stamp = pg_stamp(pg_info(&a->pages[pfn]));
		del_from_free_list(a, pfn, o, st, &c);
		break;
	}
	if (pfn == NIL)
		return NIL;
	pfn = expand(a, pfn, o, order, want_zero ? KEEP_FOR_ZERO : KEEP_FOR_NONZERO, &c, stamp);
	if (out)
		*out = c;
	if (warm) /* only a zeroing request clears: no clock read for the others */
		*warm = want_zero && warm_block(a, stamp, order);
	pg_set_info(&a->pages[pfn], mk_info(PG_BUSY, order, 0));
	note_alloc_block(a);
	return pfn;
}

/*
 * Give a block (its head PG_busy, or just taken off a cache's list) back to the
 * buddy lists, merging with free buddies up to merge_order (a merge owed
 * when it stops there beside a free buddy).  @stamp, its
 * warmth (clear.c): STAMP_NOW when its caller wrote it a moment ago (a
 * free, a drain of a block its owner freed into its cache, the excess of an
 * exact allocation whose zeroing request found the block warm), 0 when
 * nobody did (a pass's put-back, a quiesced cache), else the stamp of the
 * block it was free in (zp_grow_in_place()'s excess).  A block larger than
 * the warm range gets none: a part of it split off later was written long
 * before the free.  The clock is read only for a block that ends up large
 * enough for its stamp to matter (warm_min_order), or that stops at
 * merge_order (a later merge may make it that large); a smaller one gets
 * the last stamp read, which is older.  A merge keeps the oldest stamp of the
 * parts that have pages to clear (a part whose pages all read zero adds
 * nothing to a later clear, whatever its age), so no merged block looks
 * warmer than the pages a clear of it would touch.
 */
void free_one_page(struct zp_arena *a, uint32_t pfn, unsigned order, uint32_t stamp)
{
	struct zcount c;
	bool now = stamp == STAMP_NOW && a->warm_units && order <= a->warm_max_order, self;
	uint16_t s = stamp == STAMP_NOW || !a->warm_units ? 0 : (uint16_t)stamp, oldest = 0; /* oldest: of the buddies */
	bool merged = false; /* a buddy with pages to clear merged */

	lock_assert_held(&a->lock);
	subtree_build(a, pfn, order, &c); /* this block only: its buddies' nodes are right */
	self = c.dirty != 0;		  /* it has pages to clear itself */
	while (order < a->merge_order) {
		uint32_t buddy = listed_buddy(a, pfn, order);
		struct zcount cb;
		uint32_t bi;

		if (buddy == NIL)
			break;
		bi = pg_info(&a->pages[buddy]);
		del_from_free_list(a, buddy, order, pg_state(bi), &cb);
		if (cb.dirty) {
			oldest = merged ? warm_older(a, oldest, pg_stamp(bi)) : pg_stamp(bi);
			merged = true;
		}
		zcount_add(&c, &cb);
		pg_set_info(&a->pages[pfn], 0);
		pfn &= buddy;
		order++;
		if (order >= NODE_MIN_ORDER)
			node_store(a, pfn, order, &c); /* a node of what is being formed */
	}
	if (now)
		s = order >= a->warm_min_order || order >= a->merge_order ? warm_now(a) : a->warm_last;
	if (!self)
		s = oldest; /* 0 when no part has pages to clear */
	else if (merged)
		s = warm_older(a, s, oldest);
	add_to_free_list(a, pfn, order, &c, s); /* beside a listed buddy: a merge owed */
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
