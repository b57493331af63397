/* SPDX-License-Identifier: MIT */
/*
 * check.c - the invariant checker, the lock-rule checker's report, and
 * zp_arena_dump().
 *
 * zp_arena_check() takes every lock and proves, in this order:
 *  1. coverage: walking block heads by 2^order (an exact allocation's head
 *     by its page count, fewer than 2^order and more than half) covers
 *     [0, frontier) exactly;
 *     each head has exactly one owner flag, an order <= max_order, is
 *     aligned to its order and fits, PG_cold and PG_full only with
 *     PG_cache, bits 16-31 zero with PG_cache (they are a warmth stamp
 *     with PG_buddy, a tag with PG_alloc, a claimer's ticket with
 *     PG_busy), a tag is below TC_SLOTS and a ticket below TC_SLOTS +
 *     TC_TICKETS, and only a block of order TC_MAX_ORDER or below, not an
 *     exact allocation, carries either;
 *     every other page has info == 0, and
 *     so has every page at or above the frontier, whose zero state is that
 *     of fresh memory (no bit set);
 *  2. zero state: a free block's recorded state equals zs_summary() of its
 *     pages; a cached block has PG_full exactly when every page of it is
 *     dirty and resident; allocated pages have neither the zeroed nor the
 *     reported bit;
 *     no bit is set at or beyond nr_pages;
 *  3. buddy rule: no free buddy-list block has a free buddy-list buddy of
 *     the same order (they would have merged), except two of merge_order
 *     or more; and those pairs are exactly the owed merges: each owed[o]
 *     is NIL or the lower half of such a pair of order o, and there are as
 *     many of them as pairs (so at most one pair per order);
 *  4. lists: every list is a well-formed doubly linked list of heads with
 *     the owner, order and state of that list; inside a buddy-list block
 *     every node of the summary tree whose ancestors are mixed holds
 *     zs_count() of its pages (the walk stops below a uniform node; so it
 *     is O(pages log pages) at worst); per (order, state), the lists hold
 *     exactly the blocks found by the walk; each cache's page count equals
 *     its blocks' pages, and each cache on an arena's list is attached to
 *     that arena; a cache with a slot is that slot's and is biased exactly
 *     when the slot's mode is odd, as many slots are in use as caches have
 *     one, and a free slot's mode is even (tcache.c, "bias");
 *  5. counters: a->cnt equals zs_count() summed over the buddy blocks; the
 *     nonempty hints match the buddy lists; the everyday paths' gates are
 *     tc_orders, both 0 while a background thread is owed a restart, the
 *     free's 0 under ZP_INIT_ON_FREE or ZP_VERIFY;
 *  6. isolation: a->isolated is a well-formed list of PG_busy heads whose
 *     pages add up to isolated_pages.
 * Each step is its own function below (check_blocks() does 1-3 in one walk
 * of the descriptors).  Blocks in flight (PG_busy) are legitimate while
 * another thread allocates, frees or isolates them; their heads get step
 * 1's checks only (owner, order, alignment, tail pages), and the isolated
 * ones are summed in step 6.
 *
 * zp_arena_dump() copies what it prints under every lock and prints it
 * with none held, so its totals are one instant's, like zp_arena_stats().
 * Neither allocates; the checker's report of a broken invariant is the one
 * output (fprintf to stderr) made under every lock.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("zpage: check: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return -EUCLEAN;
}

#ifdef ZPAGE_LOCKDEP
void lockdep_fail(const char *what, const char *file, int line, const char *func)
{
	fprintf(stderr, "zpage: lockdep: %s() at %s:%d runs without holding %s\n", func, file, line, what);
	abort();
}
#endif

static bool zc_equal(const struct zcount *x, const struct zcount *y)
{
	return x->pages == y->pages && x->zeroed == y->zeroed && x->reported == y->reported && x->dirty == y->dirty &&
	       x->lazy == y->lazy;
}

/* What the walk of the descriptors found, to hold the lists against. */
struct walk {
	size_t blocks[2][NR_ORDERS][NR_ZSTATES]; /* [buddy, caches] free blocks */
	struct zcount pages[2];			 /* their pages, by zs_count() */
	size_t pairs;				 /* listed buddy pairs (of merge_order or more) */
};

/* Every node of the summary tree inside the listed block at @pfn whose
 * ancestors are mixed holds the counts of its pages (buddy.c). */
static int check_nodes(struct zp_arena *a, uint32_t pfn, unsigned order)
{
	struct zcount stored, c;
	int ret;

	if (order < NODE_MIN_ORDER)
		return 0;
	block_count(a, pfn, order, &stored);
	zs_count(a, pfn, (size_t)1 << order, &c);
	if (!zc_equal(&stored, &c))
		return fail("node %u order %u: stored counts %zu/%zu/%zu/%zu zeroed/reported/dirty/lazy, its "
			    "pages say %zu/%zu/%zu/%zu",
			    pfn, order, stored.zeroed, stored.reported, stored.dirty, stored.lazy, c.zeroed, c.reported,
			    c.dirty, c.lazy);
	if (order == NODE_MIN_ORDER || zcount_uniform(&c))
		return 0; /* nothing below is kept: its halves are its halves */
	ret = check_nodes(a, pfn, order - 1);
	return ret ? ret : check_nodes(a, pfn + ((uint32_t)1 << (order - 1)), order - 1);
}

/* Walk one list; add its blocks' counts to @sum.  Returns 0 or -EUCLEAN. */
static int check_list(struct zp_arena *a, const struct free_list *l, uint32_t owner, unsigned order, enum zstate st,
		      struct zcount *sum, const char *what)
{
	uint32_t prev = NIL;
	size_t n = 0;

	for (uint32_t pfn = l->head; pfn != NIL; prev = pfn, pfn = a->pages[pfn].next) {
		uint32_t info;
		struct zcount c;

		if (pfn >= a->nr_pages || ++n > a->nr_pages)
			return fail("%s list order %u state %d: bad link or cycle at %u", what, order, st, pfn);
		info = pg_info(&a->pages[pfn]);
		if ((info & PG_OWNER_MASK) != owner || pg_order(info) != order || pg_state(info) != st)
			return fail("%s list order %u state %d: block %u has info %#x", what, order, st, pfn, info);
		if (a->pages[pfn].prev != prev)
			return fail("%s list order %u state %d: block %u prev %u, expected %u", what, order, st, pfn,
				    a->pages[pfn].prev, prev);
		zs_count(a, pfn, (size_t)1 << order, &c);
		if (owner == PG_BUDDY) {
			int ret = check_nodes(a, pfn, order);

			if (ret)
				return ret;
		}
		zcount_add(sum, &c);
	}
	if (l->tail != prev)
		return fail("%s list order %u state %d: tail %u, expected %u", what, order, st, l->tail, prev);
	if (n != l->nr)
		return fail("%s list order %u state %d: %zu blocks linked, count says %zu", what, order, st, n, l->nr);
	return 0;
}

/* 4: @t, cache @i of the arena's list, holds the slot its tag names, if
 * any, and is biased exactly when that slot's mode is odd. */
static int check_bias(struct zp_arena *a, const struct tcache *t, unsigned i)
{
	unsigned slot = t->tag >> PG_TAG_SHIFT;

	if (t->tag & ~PG_TAG_MASK || slot >= TC_SLOTS || (slot && a->tc_slot[slot] != t))
		return fail("cache %u: tag %#x, but its slot holds %p", i, t->tag,
			    slot < TC_SLOTS ? (void *)a->tc_slot[slot] : NULL);
	if (t->biased != (slot && (atomic_load(&a->tc_mode[slot]) & 1)))
		return fail("cache %u: %s, but slot %u's mode is %u", i, t->biased ? "biased" : "not biased", slot,
			    slot ? atomic_load(&a->tc_mode[slot]) : 0);
	return 0;
}

/* 4: every slot in use holds a cache of the arena's list (@nr of them
 * have a slot); a free slot's mode is even. */
static int check_slots(struct zp_arena *a, unsigned nr)
{
	unsigned used = 0;

	if (a->tc_slot[0] || (atomic_load(&a->tc_mode[0])))
		return fail("slot 0 is in use");
	for (unsigned s = 1; s < TC_SLOTS; s++) {
		if (a->tc_slot[s])
			used++;
		else if (atomic_load(&a->tc_mode[s]) & 1)
			return fail("slot %u is free, but its mode %u is odd (biased)", s, atomic_load(&a->tc_mode[s]));
	}
	if (used != nr)
		return fail("%u slots in use, %u caches on the arena's list have one", used, nr);
	return 0;
}

/* 1: the block at @pfn has a well-formed head and clean tail pages. */
static int check_coverage(struct zp_arena *a, size_t pfn, uint32_t info)
{
	unsigned o = pg_order(info);
	size_t n = head_pages(a, pfn, info);

	if (__builtin_popcount(info & PG_OWNER_MASK) != 1)
		return fail("page %zu: expected a block head, info %#x", pfn, info);
	if ((info & PG_COLD) && (info & PG_OWNER_MASK) != PG_CACHE)
		return fail("block %zu: PG_cold outside a cache, info %#x", pfn, info);
	if ((info & PG_FULL) && (info & PG_OWNER_MASK) != PG_CACHE)
		return fail("block %zu: PG_full outside a cache, info %#x", pfn, info);
	if (pg_stamp(info) && (info & PG_OWNER_MASK) == PG_CACHE)
		return fail("block %zu: a warmth stamp or a tag in a cache, info %#x", pfn, info);
	if ((info & (PG_ALLOC | PG_BUSY)) && (info >> PG_TAG_SHIFT) && ((info & PG_EXACT) || o > TC_MAX_ORDER))
		return fail("block %zu order %u: a tag or ticket on a block no cache serves, info %#x", pfn, o, info);
	if ((info & PG_ALLOC) && (info >> PG_TAG_SHIFT) >= TC_SLOTS)
		return fail("block %zu: tag %u beyond the %u slots, info %#x", pfn, info >> PG_TAG_SHIFT, TC_SLOTS,
			    info);
	if ((info & PG_BUSY) && (info >> PG_TAG_SHIFT) >= TC_SLOTS + TC_TICKETS)
		return fail("block %zu: ticket %u beyond the slots and the pool, info %#x", pfn, info >> PG_TAG_SHIFT,
			    info);
	if ((info & PG_EXACT) && (!(info & (PG_ALLOC | PG_BUSY)) || o == 0 || n <= (size_t)1 << (o - 1) ||
				  n >= (size_t)1 << o))
		return fail("exact allocation %zu: %zu pages for order %u, info %#x", pfn, n, o, info);
	if (o > a->max_order || (pfn & (((size_t)1 << o) - 1)) || pfn + n > a->nr_pages)
		return fail("block %zu: order %u misaligned or out of range", pfn, o);
	for (size_t i = 1; i < n; i++)
		if (pg_info(&a->pages[pfn + i]))
			return fail("block %zu order %u: page %zu has info %#x", pfn, o, pfn + i,
				    pg_info(&a->pages[pfn + i]));
	return 0;
}

/* 2: the block's recorded state agrees with its pages' bits (@c). */
static int check_zero_state(size_t pfn, uint32_t info, const struct zcount *c)
{
	uint32_t owner = info & PG_OWNER_MASK;
	unsigned o = pg_order(info);

	if ((owner == PG_BUDDY || owner == PG_CACHE) && zs_summary(c) != pg_state(info))
		return fail("free block %zu order %u: listed as state %d, pages say %d", pfn, o, pg_state(info),
			    zs_summary(c));
	if (owner == PG_CACHE && o > TC_MAX_ORDER)
		return fail("cached block %zu has order %u", pfn, o);
	if (owner == PG_CACHE && !(info & PG_FULL) != (c->dirty != c->pages || c->reported))
		return fail("cached block %zu order %u: PG_full %s, but %zu of %zu pages dirty, %zu reported", pfn, o,
			    (info & PG_FULL) ? "set" : "clear", c->dirty, c->pages, c->reported);
	if (owner == PG_ALLOC && (c->dirty != c->pages || c->reported))
		return fail("allocated block %zu order %u has zeroed or reported pages", pfn, o);
	return 0;
}

/* 3: a free buddy-list block's buddy is not a free buddy-list block of
 * the same order, unless both are of merge_order or more: such pairs are
 * counted into @pairs (once, at the lower half). */
static int check_buddy_rule(struct zp_arena *a, size_t pfn, uint32_t info, size_t *pairs)
{
	unsigned o = pg_order(info);
	size_t n = (size_t)1 << o, b = pfn ^ n;
	uint32_t bi;

	if ((info & PG_OWNER_MASK) != PG_BUDDY || o >= a->max_order || b + n > a->nr_pages)
		return 0;
	bi = pg_info(&a->pages[b]);
	if ((bi & PG_OWNER_MASK) != PG_BUDDY || pg_order(bi) != o)
		return 0;
	if (o < a->merge_order)
		return fail("buddies %zu and %zu of order %u are both free", pfn, b, o);
	*pairs += pfn < b;
	return 0;
}

/* 3: the owed merges are the walk's @pairs, each once. */
static int check_owed_merges(struct zp_arena *a, size_t pairs)
{
	size_t n = 0;

	for (unsigned o = 0; o < NR_ORDERS; o++) {
		size_t pfn = a->owed[o], b = pfn + ((size_t)1 << o);

		if (pfn == NIL)
			continue;
		n++;
		if (o < a->merge_order || o >= a->max_order || (pfn & (((size_t)2 << o) - 1)) ||
		    b + ((size_t)1 << o) > a->nr_pages || (pg_info(&a->pages[pfn]) & PG_OWNER_MASK) != PG_BUDDY ||
		    pg_order(pg_info(&a->pages[pfn])) != o || (pg_info(&a->pages[b]) & PG_OWNER_MASK) != PG_BUDDY ||
		    pg_order(pg_info(&a->pages[b])) != o)
			return fail("the merge owed at order %u, %zu, is not a pair of listed buddies", o, pfn);
	}
	if (n != pairs)
		return fail("%zu merges owed, %zu pairs of listed buddies found", n, pairs);
	return 0;
}

/* 1: never-used memory has no head and no zero-state bit. */
static int check_frontier(struct zp_arena *a, size_t frontier)
{
	uint64_t m;

	for (size_t pfn = frontier; pfn < a->nr_pages; pfn++)
		if (pg_info(&a->pages[pfn]))
			return fail("page %zu beyond the frontier %zu has info %#x", pfn, frontier,
				    pg_info(&a->pages[pfn]));
	for (size_t w = frontier / 64; w < (a->nr_pages + 63) / 64; w++) {
		m = w == frontier / 64 ? ~0ull << (frontier & 63) : ~0ull;
		if ((atomic_load(&a->dirty_bm[w]) | atomic_load(&a->resident_bm[w])) & m)
			return fail("zero-state bits set at or beyond the frontier %zu (word %zu)", frontier, w);
	}
	return 0;
}

/* 1-3, in one walk of the descriptors (and one of the owed merges); fills
 * @w for steps 4 and 5. */
static int check_blocks(struct zp_arena *a, struct walk *w)
{
	size_t frontier = a->nr_pages - frontier_pages(a);
	int ret;

	for (size_t pfn = 0; pfn < frontier;) {
		uint32_t info = pg_info(&a->pages[pfn]);
		uint32_t owner = info & PG_OWNER_MASK;
		struct zcount c;

		ret = check_coverage(a, pfn, info);
		if (ret)
			return ret;
		if (pfn + head_pages(a, pfn, info) > frontier)
			return fail("block %zu order %u reaches beyond the frontier %zu", pfn, pg_order(info),
				    frontier);
		zs_count(a, pfn, head_pages(a, pfn, info), &c);
		ret = check_zero_state(pfn, info, &c);
		if (!ret)
			ret = check_buddy_rule(a, pfn, info, &w->pairs);
		if (ret)
			return ret;
		if (owner == PG_BUDDY || owner == PG_CACHE) {
			int k = owner == PG_CACHE;

			w->blocks[k][pg_order(info)][pg_state(info)]++;
			zcount_add(&w->pages[k], &c);
		}
		pfn += c.pages;
	}
	ret = check_frontier(a, frontier);
	return ret ? ret : check_owed_merges(a, w->pairs);
}

/* 4: every list is well formed and, per (order, state), the lists hold
 * exactly the blocks the walk found.  Sums the lists' pages into @lists. */
static int check_lists(struct zp_arena *a, const struct walk *w, struct zcount lists[2])
{
	size_t listed[2][NR_ORDERS][NR_ZSTATES] = {{{0}}};
	int ret;

	for (unsigned o = 0; o <= a->max_order; o++) {
		for (int s = 0; s < NR_ZSTATES; s++) {
			ret = check_list(a, &a->free[o][s], PG_BUDDY, o, s, &lists[0], "buddy");
			if (ret)
				return ret;
			listed[0][o][s] = a->free[o][s].nr;
		}
	}
	unsigned i = 0, slotted = 0;

	for (struct tcache *t = a->tcaches; t; t = t->next, i++) {
		slotted += t->tag != 0;
		struct zcount mine = {0};

		if (atomic_load(&t->arena) != a || t->arena_id != a->id)
			return fail("cache %u is on the arena's list but attached to %p (id %llu)", i,
				    (void *)atomic_load(&t->arena), (unsigned long long)t->arena_id);
		if (t->next && t->next->prev != t)
			return fail("cache %u: the list of caches is broken", i);
		for (unsigned o = 0; o <= TC_MAX_ORDER; o++) {
			for (int s = 0; s < NR_ZSTATES; s++) {
				ret = check_list(a, &t->lists[o][s], PG_CACHE, o, s, &mine, "cache");
				if (ret)
					return ret;
				listed[1][o][s] += t->lists[o][s].nr;
			}
		}
		if (mine.pages != t->pages)
			return fail("cache %u counters: %zu pages, its blocks hold %zu", i, t->pages, mine.pages);
		ret = check_bias(a, t, i);
		if (ret)
			return ret;
		zcount_add(&lists[1], &mine);
	}
	ret = check_slots(a, slotted);
	if (ret)
		return ret;
	for (int k = 0; k < 2; k++)
		for (unsigned o = 0; o <= a->max_order; o++)
			for (int s = 0; s < NR_ZSTATES; s++)
				if (listed[k][o][s] != w->blocks[k][o][s])
					return fail("%s order %u state %d: %zu blocks listed, %zu found by the walk",
						    k ? "cache" : "buddy", o, s, listed[k][o][s], w->blocks[k][o][s]);
	return 0;
}

/* 5: the everyday paths' gates are what gates_update() makes of tc_orders,
 * the flags and daemon_restart (all three change only with the gates, and
 * under every lock or with no other thread about): never past tc_orders,
 * so no inline path indexes a cache list that is not there; shut where
 * the whole way must run (init_on_free, verify, a restart owed); and not
 * left shut. */
static int check_gates(struct zp_arena *a)
{
	unsigned ga = atomic_load(&a->fast_alloc_orders), gf = atomic_load(&a->fast_free_orders);
	bool restart = atomic_load(&a->daemon_restart);
	unsigned want_a = restart ? 0 : a->tc_orders;
	unsigned want_f = a->flags & (ZP_INIT_ON_FREE | ZP_VERIFY) ? 0 : want_a;

	if (ga != want_a || gf != want_f)
		return fail("gates: allocation %u, free %u orders; tc_orders %u, flags %#x, restart owed %d make %u, %u",
			    ga, gf, a->tc_orders, a->flags, restart, want_a, want_f);
	return 0;
}

/* 5: the counters and hints agree with the blocks. */
static int check_counters(struct zp_arena *a, const struct walk *w, const struct zcount lists[2])
{
	const struct zcount *b = &w->pages[0];

	for (unsigned o = 0; o <= a->max_order; o++) {
		for (int s = 0; s < NR_ZSTATES; s++) {
			bool hint = (atomic_load(&a->nonempty[s]) >> o) & 1;

			if (hint != (a->free[o][s].nr != 0))
				return fail("nonempty hint for order %u state %d is %d", o, s, hint);
		}
	}
	if (!zc_equal(&lists[0], b) || !zc_equal(&a->cnt, b))
		return fail("buddy counters: %zu/%zu/%zu/%zu pages/zeroed/reported/dirty, blocks say %zu/%zu/%zu/%zu",
			    a->cnt.pages, a->cnt.zeroed, a->cnt.reported, a->cnt.dirty, b->pages, b->zeroed,
			    b->reported, b->dirty);
	if (!zc_equal(&lists[1], &w->pages[1]))
		return fail("caches list %zu pages, the walk found %zu cached", lists[1].pages, w->pages[1].pages);
	return check_gates(a);
}

/* 6: the blocks reporting and pre-zeroing passes hold. */
static int check_isolated(struct zp_arena *a)
{
	uint32_t prev = NIL;
	size_t n = 0, pages = 0;

	for (uint32_t pfn = a->isolated.head; pfn != NIL; prev = pfn, pfn = a->pages[pfn].next) {
		uint32_t info;

		if (pfn >= a->nr_pages || ++n > a->nr_pages)
			return fail("isolated list: bad link or cycle at %u", pfn);
		info = pg_info(&a->pages[pfn]);
		if ((info & PG_OWNER_MASK) != PG_BUSY)
			return fail("isolated block %u has info %#x", pfn, info);
		if (a->pages[pfn].prev != prev)
			return fail("isolated block %u prev %u, expected %u", pfn, a->pages[pfn].prev, prev);
		pages += (size_t)1 << pg_order(info);
	}
	if (a->isolated.tail != prev || n != a->isolated.nr)
		return fail("isolated list: tail %u / %zu blocks, expected %u / %zu", a->isolated.tail,
			    a->isolated.nr, prev, n);
	if (pages != a->isolated_pages)
		return fail("isolated list holds %zu pages, isolated_pages says %zu", pages, a->isolated_pages);
	return 0;
}

static int check_locked(struct zp_arena *a)
{
	struct walk w = {0}; /* ~1 KiB: no allocation under every lock */
	struct zcount lists[2] = {{0}};
	int ret;

	lock_assert_all_held(a);
	ret = check_blocks(a, &w);
	if (!ret)
		ret = check_lists(a, &w, lists);
	if (!ret)
		ret = check_counters(a, &w, lists);
	if (!ret)
		ret = check_isolated(a);
	return ret;
}

int zp_arena_check(struct zp_arena *a)
{
	int ret, old;

	if (!a)
		return -EINVAL;
	/* fprintf() under every lock may be a cancellation point */
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
	lock_all(a);
	ret = check_locked(a);
	unlock_all(a);
	pthread_setcancelstate(old, NULL);
	return ret;
}

/* ---- zp_arena_dump() ---- */

static const char *const state_names[NR_ZSTATES] = {"zeroed", "dirty", "reported"};

struct dump {
	size_t buddy[NR_ORDERS][NR_ZSTATES]; /* free blocks on the buddy lists */
	size_t cached[TC_MAX_ORDER + 1][NR_ZSTATES];
	size_t isolated_blocks, isolated_pages, never_used, merges;
	struct zcount cnt_buddy, cnt_tc;
	unsigned nr_caches;
	struct zp_stats st;
};

/* Print one table: a row per state, a column per order 0..@max. */
static void dump_table(FILE *f, const size_t (*t)[NR_ZSTATES], unsigned max)
{
	fprintf(f, "  %-9s", "order");
	for (unsigned o = 0; o <= max; o++)
		fprintf(f, " %6u", o);
	fputc('\n', f);
	for (int s = 0; s < NR_ZSTATES; s++) {
		fprintf(f, "  %-9s", state_names[s]);
		for (unsigned o = 0; o <= max; o++)
			fprintf(f, " %6zu", t[o][s]);
		fputc('\n', f);
	}
}

void zp_arena_dump(struct zp_arena *a, FILE *f)
{
	struct dump dump = {0}, *d = &dump; /* under 1 KiB */
	struct zp_stats *st = &d->st;

	if (!a || !f)
		return;
	lock_all(a);
	stats_locked(a, st);
	for (unsigned o = 0; o <= a->max_order; o++)
		for (int s = 0; s < NR_ZSTATES; s++)
			d->buddy[o][s] = a->free[o][s].nr;
	{
		struct tc_totals tc;

		tc_sum(a, &tc);
		memcpy(d->cached, tc.blocks, sizeof(d->cached));
		d->cnt_tc = tc.cnt;
		d->nr_caches = tc.nr_caches;
	}
	d->cnt_buddy = a->cnt;
	d->never_used = frontier_pages(a);
	for (unsigned o = 0; o < NR_ORDERS; o++)
		d->merges += a->owed[o] != NIL;
	d->isolated_blocks = a->isolated.nr;
	d->isolated_pages = a->isolated_pages;
	unlock_all(a);

	fprintf(f, "zpage arena %p: %zu pages (%zu MiB), max_order %u, report_order %u, %u thread caches\n",
		(void *)a->base, a->nr_pages, a->nr_pages >> (20 - ZP_PAGE_SHIFT), a->max_order, a->report_order,
		d->nr_caches);
	fprintf(f, "free blocks on the buddy lists, per order and state (%zu pages):\n", d->cnt_buddy.pages);
	dump_table(f, (const size_t(*)[NR_ZSTATES])d->buddy, a->max_order);
	fprintf(f, "merges owed (pairs of free buddies of order %u or more, one per order at most, made when "
		   "another pair forms there or a larger request needs them): %zu\n",
		a->merge_order, d->merges);
	fprintf(f, "free blocks in the thread caches, all threads (%zu pages):\n", d->cnt_tc.pages);
	dump_table(f, (const size_t(*)[NR_ZSTATES])d->cached, TC_MAX_ORDER);
	fprintf(f, "held by a report / pre-zero pass: %zu blocks, %zu pages\n", d->isolated_blocks, d->isolated_pages);
	fprintf(f, "never used (zeroed and reported, on no list yet): %zu pages\n", d->never_used);
	fprintf(f,
		"pages: %zu free (%zu zeroed, %zu reported, %zu dirty, %zu held by a pass), %zu allocated or in "
		"flight\n",
		st->nr_free, st->nr_free_zeroed, st->nr_free_reported,
		(d->cnt_buddy.dirty - d->cnt_buddy.lazy) + (d->cnt_tc.dirty - d->cnt_tc.lazy), d->isolated_pages,
		a->nr_pages - st->nr_free);
	fprintf(f,
		"counters: cleared %llu, clear_skipped %llu, reported %llu, refaulted %llu, prezeroed %llu, "
		"verify_failures %llu, report_zeroes %d\n",
		(unsigned long long)st->pages_cleared, (unsigned long long)st->pages_clear_skipped,
		(unsigned long long)st->pages_reported, (unsigned long long)st->pages_refaulted,
		(unsigned long long)st->pages_prezeroed, (unsigned long long)st->verify_failures, st->report_zeroes);
}
