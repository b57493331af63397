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
 *   (the everyday zeroing allocation of a hot cached block, every page
 *   dirty (PG_full), without an address, while a->clear_inline (above 4
 *   KiB) or a->clear_inline_small (4 KiB), skips the layers:
 *   alloc_zeroed_hot(), the clear inline, the same block, stores, count
 *   and head)
 *
 * Memory is also cleared, through clear.c, at free time with
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
 * Free mirrors it: zp_free_pages() validates the pointer by its head's
 * info word (PG_alloc|order, and the tag of the cache whose owner
 * allocated it), so a foreign, misaligned, tail, wrong-order or double free
 * is refused with -EINVAL before anything changes, even when two threads
 * race to free the same block: the owner of a biased cache frees its own
 * block with a plain load and store (free_own_fast()), anything else
 * claims the head (PG_alloc -> PG_busy) by a compare-and-swap that keeps
 * one winner against those plain frees (claim_alloc(), tcache.c's
 * "bias"); free_pages_prepare() applies init_on_free / poisoning; then the
 * block goes to the thread's cache or the buddy lists.
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
	size_t npages;	     /* 2^order, or fewer for an exact-size allocation (zp_alloc) */
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
 * thread's cache, whose small blocks post_alloc_hook counts itself.  @hot:
 * the block was freed into this thread's cache by this thread (not brought
 * there by a refill: PG_COLD), most recently first (a guess that its lines
 * are still in this core's caches: a block another thread wrote, or one
 * left long in the cache, is cold); or, for a zeroing request, it is warm
 * (clear.c: freed to the buddy lists a moment ago, a refill's or the buddy
 * path's). */
static ZP_ALWAYS_INLINE uint32_t get_page_from_freelist(const struct alloc_context *ac, struct zcount *c, bool *hot)
{
	struct zp_arena *a = ac->arena;
	uint32_t pfn;

	*hot = false;
	if (tc_serves(a, ac->order)) { /* zp_alloc_pages() made the inline try; exact sizes take the lock anyway */
		c->pages = 0;
		return rmqueue_tcache(a, ac->order, ac->want_zero, hot);
	}
	zlock_lock(&a->lock);
	pfn = rmqueue_smallest(a, ac->order, ac->want_zero, ALL_STATES, c, hot);
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
static ZP_NOINLINE uint32_t alloc_pages_slowpath(const struct alloc_context *ac, struct zcount *c, bool *warm)
{
	struct zp_arena *a = ac->arena;

	for (;;) {
		uint32_t pfn;
		bool passes;

		lock_all(a);
		drain_all_pages_locked(a);
		pfn = rmqueue_smallest(a, ac->order, ac->want_zero, ALL_STATES, c, warm);
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

/* post_alloc_hook() past its usual case: count, clear and record. */
static ZP_NOINLINE void post_alloc_init(const struct alloc_context *ac, uint32_t pfn, const struct zcount *cin,
					 bool warm)
{
	struct zp_arena *a = ac->arena;
	size_t n = ac->npages;
	const struct zcount *c = cin;
	struct zcount small;

	if (!cin->pages) { /* from a thread's cache, or trimmed (exact size) */
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
			cleared = clear_dirty_range(a, pfn, n, ac->order, ac->user_addr, warm);
			tstat_add(&st->cleared, cleared, shared);
			tstat_add(&st->skipped, n - cleared, shared);
		}
	}
	if (c->dirty != n || c->reported) /* else both bits are set already */
		zs_clear(a, pfn, n);
}

static ZP_ALWAYS_INLINE void post_alloc_hook(const struct alloc_context *ac, uint32_t pfn, const struct zcount *c,
					     bool hot)
{
	struct zp_arena *a = ac->arena;

	/* a whole block from a thread's cache, every page dirty and resident
	 * (the usual case): no zeroing asked, nothing to count, clear or
	 * record; zeroing asked and the block small or hot, clear it whole and
	 * count it (its zero bits say dirty already, as the caller's pages
	 * should) */
	if (!c->pages && ac->npages == (size_t)1 << ac->order && zs_small_all_dirty(a, pfn, ac->order)) {
		if (!ac->want_zero)
			return;
		if (clear_small_dirty_block(a, pfn, ac->order, ac->user_addr, hot)) {
			bool shared;
			struct tc_stats *st = tc_stats_fast(a, &shared); /* sets shared */

			tstat_add(&st->cleared, ac->npages, shared);
			return;
		}
	}
	post_alloc_init(ac, pfn, c, hot);
}

static ZP_ALWAYS_INLINE void prep_new_page(const struct alloc_context *ac, uint32_t pfn, const struct zcount *c,
					   bool hot)
{
	bool exact = ac->npages != (size_t)1 << ac->order;
	uint32_t tag = 0;

	post_alloc_hook(ac, pfn, c, hot);
	if (!exact && tc_serves(ac->arena, ac->order)) { /* a block its cache may free (tcache.c, "bias") */
		const struct tcache *t = tc_mine(ac->arena);

		tag = t ? t->tag : 0;
	}
	pg_set_info(&ac->arena->pages[pfn], mk_info(PG_ALLOC | (exact ? PG_EXACT : 0), ac->order, 0) | tag);
}

/* The fast path, else the slow one; NIL with errno ENOMEM. */
static ZP_ALWAYS_INLINE uint32_t take_block(const struct alloc_context *ac, struct zcount *c, bool *hot)
{
	uint32_t pfn;

	daemon_ensure(ac->arena);
	pfn = get_page_from_freelist(ac, c, hot);
	if (pfn == NIL)
		pfn = alloc_pages_slowpath(ac, c, hot);
	if (pfn == NIL)
		errno = ENOMEM;
	return pfn;
}

/* zp_alloc_pages() past its everyday case (below): every check, the whole
 * way through the caches and the buddy lists, the slow path. */
static ZP_NOINLINE void *alloc_pages_whole(struct zp_arena *a, zp_gfp_t gfp, unsigned order, uintptr_t user_addr)
{
	struct zcount c;
	uint32_t pfn;
	bool hot;

	if (!a || (gfp & ~ZP_GFP_ZERO) || order > a->max_order) {
		errno = EINVAL;
		return NULL;
	}
	if (((size_t)1 << order) > a->nr_pages) { /* no such block in this arena, ever: */
		errno = ENOMEM;			  /* no need to drain every cache to know */
		return NULL;
	}

	const struct alloc_context ac = {
		.arena = a,
		.order = order,
		.npages = (size_t)1 << order,
		.user_addr = user_addr,
		.want_zero = (gfp & ZP_GFP_ZERO) || (a->flags & ZP_INIT_ON_ALLOC),
	};

	pfn = take_block(&ac, &c, &hot);
	if (pfn == NIL)
		return NULL;
	prep_new_page(&ac, pfn, &c, hot);
	return pfn_to_addr(a, pfn);
}

/* A whole block of @order that the everyday case took from this thread's
 * cache (its head PG_busy), made ready as the whole way would make it. */
static ZP_NOINLINE void *alloc_cached_finish(struct zp_arena *a, bool want_zero, unsigned order, uintptr_t user_addr,
					     uint32_t pfn, bool hot)
{
	struct zcount c = {.pages = 0}; /* post_alloc_hook() counts a cached block itself */
	const struct alloc_context ac = {
		.arena = a,
		.order = order,
		.npages = (size_t)1 << order,
		.user_addr = user_addr,
		.want_zero = want_zero,
	};

	prep_new_page(&ac, pfn, &c, hot);
	return pfn_to_addr(a, pfn);
}

/*
 * A zeroing allocation's block from this thread's cache @t, taken by
 * alloc_zeroed() or rmqueue_tcache_zero(), that alloc_cached_finish() would clear whole in
 * one go: no address, every page dirty and resident (PG_FULL) and not
 * PG_COLD (freed here, or a zeroing refill found it warm); larger than
 * SMALL_CACHED_MAX with rep stosb while a->clear_inline, or of at most
 * SMALL_CACHED_MAX (one page) with 32-byte stores while
 * a->clear_inline_small.  The same clear, count and head, with the clear
 * inline and none of the layers between (post_alloc_hook()'s bitmap test,
 * clear_small_dirty_block(), the primitive's indirect call), which cost
 * such a block 4-10 ns of its 50-480 in churn (DESIGN 6).  It counts on
 * @t's own counters (the owner's: no atomic read-modify-write) and tags
 * the head with @t's slot.
 */
static ZP_ALWAYS_INLINE void *alloc_zeroed_hot(struct zp_arena *a, struct tcache *t, unsigned order, uint32_t pfn)
{
	void *p = pfn_to_addr(a, pfn);

	tc_assert_owner(t);
#ifdef ZPAGE_DEBUG_COUNTS
	atomic_fetch_add_explicit(&a->dbg_inline_clears, 1, memory_order_relaxed);
#endif
	if ((ZP_PAGE_SIZE << order) > SMALL_CACHED_MAX)
		zero_stosb_inline(p, ZP_PAGE_SIZE << order);
	else
		zero_vec_inline(p, ZP_PAGE_SIZE << order);
	tstat_add(&t->stats.cleared, (size_t)1 << order, false); /* the owner's counters */
	pg_set_info(&a->pages[pfn], mk_info(PG_ALLOC, order, 0) | t->tag);
	return p;
}

/* May a cached block of @order whose head had @info be cleared inline
 * (alloc_zeroed_hot()) for a request with @user_addr: hot (not PG_COLD),
 * PG_full, no address, and the stores allowed inline?  The one rule, for
 * both callers. */
static ZP_ALWAYS_INLINE bool clear_inline_ok(const struct zp_arena *a, uint32_t info, unsigned order,
					     uintptr_t user_addr)
{
	return (info & (PG_FULL | PG_COLD)) == PG_FULL && user_addr == ZP_USER_ADDR_NONE &&
	       ((ZP_PAGE_SIZE << order) > SMALL_CACHED_MAX ? a->clear_inline : a->clear_inline_small);
}

/* alloc_zeroed() past its everyday case, in the same active section of
 * this thread's cache @t (which rmqueue_tcache_zero() leaves): the choice
 * in the state preference order (a zeroed block first, a refill first when
 * the buddy lists may have one), then the clear inline, the usual way
 * (alloc_cached_finish()) or the whole way. */
static ZP_NOINLINE void *alloc_zeroed_cached(struct zp_arena *a, struct tcache *t, zp_gfp_t gfp, unsigned order,
					     uintptr_t user_addr)
{
	bool hot, full;
	uint32_t pfn = rmqueue_tcache_zero(a, t, order, &hot, &full);

	if (likely(pfn != NIL)) {
		if (clear_inline_ok(a, (full ? PG_FULL : 0) | (hot ? 0 : PG_COLD), order, user_addr))
			return alloc_zeroed_hot(a, t, order, pfn);
		return alloc_cached_finish(a, true, order, user_addr, pfn, hot);
	}
	return alloc_pages_whole(a, gfp, order, user_addr);
}

/*
 * zp_alloc_pages()'s everyday case for a zeroing request, in a function of
 * its own: it clears, and its registers are not the caller's to save.  The
 * usual case stays here, with the cache looked up once: no zeroed block in
 * this thread's cache nor (the hint says) on the buddy lists, so the state
 * preference takes the head of the dirty list; hot and PG_full, and no
 * address: it is cleared inline.  Anything else is alloc_zeroed_cached()'s,
 * in the same active section, which decides the same from the start; no
 * cache, or a quiescer, the whole way's.
 */
static ZP_NOINLINE void *alloc_zeroed(struct zp_arena *a, zp_gfp_t gfp, unsigned order, uintptr_t user_addr)
{
	struct tcache *t = tc_mine(a);
	struct free_list *l;
	uint32_t pfn;

	lock_assert_not_held(&a->lock);
	if (unlikely(!t) || unlikely(!tc_try_enter(t)))
		return alloc_pages_whole(a, gfp, order, user_addr);
	l = &t->lists[order][ZS_DIRTY];
	pfn = l->head;
	if (likely(!t->lists[order][ZS_ZEROED].nr) && likely(pfn != NIL) &&
	    likely(clear_inline_ok(a, pg_info(&a->pages[pfn]), order, user_addr)) &&
	    likely(!buddy_may_have(a, order, ZS_ZEROED))) {
		tc_del_head(a, t, l, pfn, order, PG_BUSY);
		tc_leave(t);
		return alloc_zeroed_hot(a, t, order, pfn);
	}
	return alloc_zeroed_cached(a, t, gfp, order, user_addr);
}

/*
 * The everyday case stays in this function, which calls nothing on its way
 * and so saves at most one register: a request that does not want zeroing, of an
 * order the caches serve, for which this thread's cache holds a block with
 * every page dirty (as a block freed here has): it only changes owner.  A
 * zeroing request goes to alloc_zeroed(), anything else (a forked child's
 * first call included: its background thread to start) the whole way
 * (alloc_pages_whole(), which decides the same), both tail calls.
 */
void *zp_alloc_pages(struct zp_arena *a, zp_gfp_t gfp, unsigned int order, uintptr_t user_addr)
{
	if (likely(a) && likely(!(gfp & ~ZP_GFP_ZERO)) && likely(fast_alloc(a, order))) {
		uint32_t pfn;

		if (gfp || (a->flags & ZP_INIT_ON_ALLOC))
			return alloc_zeroed(a, gfp, order, user_addr);
		pfn = rmqueue_tcache_dirty(a, order);
		if (likely(pfn != NIL))
			return pfn_to_addr(a, pfn);
		return alloc_pages_whole(a, 0, order, user_addr); /* gfp is 0: one register free */
	}
	return alloc_pages_whole(a, gfp, order, user_addr);
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

/* zp_free_pages() past its everyday case, for a block it has validated
 * (PG_busy now): init_on_free or poisoning, the whole way into the
 * thread's cache, or the buddy lists. */
static ZP_NOINLINE int free_pages_whole(struct zp_arena *a, uint32_t pfn, unsigned order)
{
	daemon_ensure(a);
	free_pages_prepare(a, pfn, order);
	if (tc_serves(a, order)) {
		bool all_dirty = !(a->flags & ZP_INIT_ON_FREE); /* else it is zero now */

		if (!free_tcache_fast(a, pfn, order, all_dirty))
			free_tcache(a, pfn, order, all_dirty);
	} else {
		zlock_lock(&a->lock);
		free_one_page(a, pfn, order, STAMP_NOW);
		zlock_unlock(&a->lock);
	}
	return 0;
}

/*
 * Claim the allocated block at @pfn whose head read @info: the head becomes
 * @busy (PG_busy), or false when it changed meanwhile (another free came
 * first).  A block tagged with another thread's cache may be freed by that
 * cache's owner without a compare-and-swap while the cache is biased:
 * tc_claim_tagged() (tcache.c, "bias") claims it.
 */
static ZP_ALWAYS_INLINE bool claim_alloc(struct zp_arena *a, uint32_t pfn, uint32_t info, uint32_t busy)
{
	const struct tcache *me;

	if (likely(!(info & PG_TAG_MASK)) || ((me = tc_mine(a)) && me->tag == (info & PG_TAG_MASK)))
		return atomic_compare_exchange_strong_explicit(&a->pages[pfn].info, &info, busy, memory_order_acq_rel,
							       memory_order_acquire);
	return tc_claim_tagged(a, pfn, info, busy);
}

/* zp_free_pages() past this thread's cache: a block another thread's cache
 * tagged, or none to free into; every check again. */
static ZP_NOINLINE int free_pages_general(struct zp_arena *a, uint32_t pfn, unsigned order)
{
	uint32_t info = pg_info(&a->pages[pfn]);

	if ((info & ~PG_TAG_MASK) != mk_info(PG_ALLOC, order, 0) ||
	    !claim_alloc(a, pfn, info, mk_info(PG_BUSY, order, 0)))
		return -EINVAL;
	if (likely(fast_free(a, order)) && likely(free_tcache_fast(a, pfn, order, true)))
		return 0;
	return free_pages_whole(a, pfn, order);
}

/*
 * free_own_fast() past a biased cache's own block, @t entered, @info the
 * head's: a block of this thread's cache (or untagged) is claimed with the
 * compare-and-swap, which counts towards biasing the cache again; another
 * cache's goes the general way; anything else is refused, nothing changed.
 */
static ZP_NOINLINE int free_own_cas(struct zp_arena *a, struct tcache *t, uint32_t pfn, unsigned order, uint32_t info)
{
	uint32_t want = mk_info(PG_ALLOC, order, 0);

	if (info != want && info != (want | t->tag)) {
		tc_leave(t);
		return (info & ~PG_TAG_MASK) == want ? free_pages_general(a, pfn, order) : -EINVAL;
	}
	if (!atomic_compare_exchange_strong_explicit(&a->pages[pfn].info, &info, mk_info(PG_BUSY, order, 0),
						     memory_order_acq_rel, memory_order_acquire)) {
		tc_leave(t);
		return -EINVAL;
	}
	if ((info & PG_TAG_MASK) && unlikely(++t->bias_count >= t->bias_period))
		tc_rebias(a, t);
	tc_add(a, t, pfn, order, false, true);
	if (unlikely(t->pages > TC_HIGH_PAGES))
		return tc_drain_high_leave(a, t);
	tc_leave(t);
	return 0;
}

/*
 * The everyday free, of an allocated block whose tag is this thread's
 * cache's into that cache, with zp_free_pages()'s result.  A biased cache
 * validates its own blocks with a plain load and store (tcache.c, "bias");
 * any other case takes free_own_cas() (the compare-and-swap, or a
 * refusal), and no cache or a quiescer the general way.  Every call here
 * is in tail position, so the path saves no register.
 */
static ZP_ALWAYS_INLINE int free_own_fast(struct zp_arena *a, uint32_t pfn, unsigned order)
{
	struct tcache *t = tc_mine(a);
	uint32_t info;

	lock_assert_not_held(&a->lock);
	if (unlikely(!t) || unlikely(!tc_try_enter(t)))
		return free_pages_general(a, pfn, order);
	info = pg_info(&a->pages[pfn]);
	if (unlikely(!t->biased) || unlikely(info != (mk_info(PG_ALLOC, order, 0) | t->tag)))
		return free_own_cas(a, t, pfn, order, info);
	/* no other thread frees it without revoking the bias first, which
	 * waits for this section to end */
	tc_add(a, t, pfn, order, false, true);
	if (unlikely(t->pages > TC_HIGH_PAGES))
		return tc_drain_high_leave(a, t);
	tc_leave(t);
	return 0;
}

int zp_free_pages(struct zp_arena *a, void *addr, unsigned int order)
{
	uintptr_t base, off;
	size_t size;
	uint32_t pfn;

	if (!a || order > a->max_order)
		return -EINVAL;
	/* NULL included: below the base (never 0).  No overflow in off + size:
	 * base is a nonzero multiple of the largest block, so off <=
	 * UINTPTR_MAX - base <= UINTPTR_MAX - size */
	base = (uintptr_t)a->base;
	off = (uintptr_t)addr - base;
	size = ZP_PAGE_SIZE << order;
	if ((uintptr_t)addr < base || (off & (size - 1)) || off + size > (a->nr_pages << ZP_PAGE_SHIFT))
		return -EINVAL;
	pfn = (uint32_t)(off >> ZP_PAGE_SHIFT);

	/* the everyday case: a block this thread allocated, into its cache,
	 * nothing to write into the block, every page of it dirty (as an
	 * allocated block's are); no call on the way, so no register to save
	 * (a forked child's first call goes the whole way, which starts its
	 * background thread) */
	if (likely(fast_free(a, order)))
		return free_own_fast(a, pfn, order);
	return free_pages_general(a, pfn, order);
}

/* ---- exact-size allocations (the kernel's alloc_pages_exact) ---- */

/* log2 of the largest power of two <= @n (n >= 1). */
static unsigned floor_log2(size_t n)
{
	return 63u - (unsigned)__builtin_clzll((unsigned long long)n);
}

/*
 * Give back [s, end) of a block based at @base (aligned to the block's
 * size) as the aligned power-of-two pieces it splits into, each merging
 * with its free buddies; pages keep their zero state, and @stamp is their
 * warmth (free_one_page()).  Arena lock held; nobody else owns these pages.
 */
static void free_range_locked(struct zp_arena *a, uint32_t base, size_t s, size_t end, uint32_t stamp)
{
	lock_assert_held(&a->lock);
	while (s < end) {
		unsigned o = floor_log2(end - s);

		if (s != base && (unsigned)__builtin_ctzll((unsigned long long)(s - base)) < o)
			o = (unsigned)__builtin_ctzll((unsigned long long)(s - base));
		pg_set_info(&a->pages[s], mk_info(PG_BUSY, o, 0));
		free_one_page(a, (uint32_t)s, o, stamp);
		s += (size_t)1 << o;
	}
}

/* The warmth a free of @n pages gives its pieces: none when the allocation
 * is larger than the warm range, as free_one_page() decides for a whole
 * block (a piece of it was written long before the free). */
static uint32_t free_stamp(const struct zp_arena *a, size_t n)
{
	return n <= ((size_t)1 << a->warm_max_order) ? STAMP_NOW : 0;
}

void *zp_alloc(struct zp_arena *a, zp_gfp_t gfp, size_t size, uintptr_t user_addr)
{
	struct zcount c;
	bool hot; /* from a thread's cache, freed there by this thread; or warm */
	size_t n;
	unsigned order;
	uint32_t pfn;

	if (!a || (gfp & ~ZP_GFP_ZERO) || !size) {
		errno = EINVAL;
		return NULL;
	}
	if (size > (ZP_PAGE_SIZE << a->max_order) || size > (a->nr_pages << ZP_PAGE_SHIFT)) {
		errno = ENOMEM;
		return NULL;
	}
	n = (size + ZP_PAGE_SIZE - 1) >> ZP_PAGE_SHIFT;
	order = n == 1 ? 0 : floor_log2(n - 1) + 1;
	if (((size_t)1 << order) > a->nr_pages) { /* no such block in this arena, ever */
		errno = ENOMEM;
		return NULL;
	}
	if (n == (size_t)1 << order) /* a whole block: zp_free() takes it too */
		return zp_alloc_pages(a, gfp, order, user_addr);

	const struct alloc_context ac = {
		.arena = a,
		.order = order,
		.npages = n,
		.user_addr = user_addr,
		.want_zero = (gfp & ZP_GFP_ZERO) || (a->flags & ZP_INIT_ON_ALLOC),
	};

	pfn = take_block(&ac, &c, &hot);
	if (pfn == NIL)
		return NULL;
	/* keep n pages, give back the rest with its zero state: a 3 MiB
	 * request costs 3 MiB */
	zlock_lock(&a->lock);
	a->pages[pfn].next = (uint32_t)n;
	pg_set_info(&a->pages[pfn], mk_info(PG_BUSY | PG_EXACT, order, 0));
	free_range_locked(a, pfn, pfn + n, pfn + ((size_t)1 << order), ac.want_zero && hot ? STAMP_NOW : 0);
	zlock_unlock(&a->lock);
	c.pages = 0; /* post_alloc_hook counts the n pages kept */
	prep_new_page(&ac, pfn, &c, hot); /* not whole: post_alloc_init() clears it, cached when hot */
	return pfn_to_addr(a, pfn);
}

/* The head pfn of @addr if it lies in @a and is page-aligned, else NIL. */
static uint32_t addr_to_pfn(const struct zp_arena *a, const void *addr)
{
	uintptr_t base = (uintptr_t)a->base, off = (uintptr_t)addr - base;

	if (!addr || (uintptr_t)addr < base || off >= (a->nr_pages << ZP_PAGE_SHIFT) || (off & (ZP_PAGE_SIZE - 1)))
		return NIL;
	return (uint32_t)(off >> ZP_PAGE_SHIFT);
}

int zp_free(struct zp_arena *a, void *addr)
{
	uint32_t pfn, info;
	size_t n;

	if (!a || (pfn = addr_to_pfn(a, addr)) == NIL)
		return -EINVAL;
	info = pg_info(&a->pages[pfn]);
	if ((info & PG_OWNER_MASK) != PG_ALLOC)
		return -EINVAL;
	if (!(info & PG_EXACT))
		return zp_free_pages(a, addr, pg_order(info)); /* its claim decides */
	if (!claim_alloc(a, pfn, info, (info & ~(PG_ALLOC | PG_TAG_MASK)) | PG_BUSY))
		return -EINVAL;
	n = a->pages[pfn].next; /* ours now */
	daemon_ensure(a);
	if (a->flags & ZP_INIT_ON_FREE) {
		bool shared;
		struct tc_stats *st = tc_stats_here(a, &shared);

		tstat_add(&st->cleared, clear_dirty_free_range(a, pfn, n), shared);
	} else if (a->flags & ZP_VERIFY) {
		memset(pfn_to_addr(a, pfn), POISON_BYTE, n << ZP_PAGE_SHIFT);
	}
	zlock_lock(&a->lock);
	free_range_locked(a, pfn, pfn, pfn + n, free_stamp(a, n));
	zlock_unlock(&a->lock);
	return 0;
}

/*
 * The drop-in's realloc (internal): grow the exact allocation at @addr to
 * @size bytes where it is, taking the free pages that follow it inside the
 * block it came from (the pieces zp_alloc() gave back, if nobody has taken
 * them since: their buddies are inside the allocation, so they never merged
 * away, but another allocation may have split them; what was split and
 * freed again may lie apart as a merge owed, so the merges owed below the
 * block's order are made first).  Everything under the arena lock, so the
 * checker sees the allocation before or after.  0 (it now has at least
 * @size bytes), -EINVAL (@a NULL, @size 0, or @addr not in the arena), or
 * -ENOMEM with the allocation unchanged (a plain block, a size past the
 * block, or a page taken): the caller moves.  @a is NULL or a live arena
 * (the drop-in's own; not part of the public API).
 */
int zp_grow_in_place(struct zp_arena *a, void *addr, size_t size)
{
	uint32_t pfn = a ? addr_to_pfn(a, addr) : NIL, info;
	size_t n, n2, end, s;
	uint64_t refaulted = 0;
	unsigned order;
	uint16_t last_stamp = 0;

	if (pfn == NIL || !size)
		return -EINVAL;
	info = pg_info(&a->pages[pfn]);
	if ((info & (PG_OWNER_MASK | PG_EXACT)) != (PG_ALLOC | PG_EXACT))
		return -ENOMEM;
	order = pg_order(info);
	n = a->pages[pfn].next;
	if (size > (ZP_PAGE_SIZE << order))
		return -ENOMEM;
	n2 = (size + ZP_PAGE_SIZE - 1) >> ZP_PAGE_SHIFT;
	if (n2 <= n)
		return 0;
	end = pfn + ((size_t)1 << order);
	zlock_lock(&a->lock);
	if (order > a->merge_order) /* a piece split and freed again: whole */
		coalesce(a, order);
	for (s = pfn + n; s < pfn + n2;) { /* every piece [n, n2) needs is still free and whole */
		unsigned o = floor_log2(end - s);
		uint32_t pi = pg_info(&a->pages[s]);

		if ((unsigned)__builtin_ctzll((unsigned long long)(s - pfn)) < o)
			o = (unsigned)__builtin_ctzll((unsigned long long)(s - pfn));
		if ((pi & PG_OWNER_MASK) != PG_BUDDY || pg_order(pi) != o) {
			zlock_unlock(&a->lock);
			return -ENOMEM;
		}
		s += (size_t)1 << o;
	}
	{ /* reported pages among those the allocation takes (not the excess) */
		struct zcount c;

		zs_count(a, pfn + n, n2 - n, &c);
		refaulted = c.reported;
	}
	for (s = pfn + n; s < pfn + n2;) { /* take them */
		uint32_t pi = pg_info(&a->pages[s]);
		unsigned o = pg_order(pi);

		last_stamp = pg_stamp(pi);
		del_from_free_list(a, (uint32_t)s, o, pg_state(pi), NULL);
		s += (size_t)1 << o;
	}
	zs_clear(a, pfn + n, n2 - n); /* the caller's now; the excess keeps its state, */
	free_range_locked(a, pfn, pfn + n2, s, last_stamp); /* and its warmth: what the last piece brought past n2 */
	if (n2 == (size_t)1 << order) {
		pg_set_info(&a->pages[pfn], mk_info(PG_ALLOC, order, 0)); /* a whole block now */
	} else {
		a->pages[pfn].next = (uint32_t)n2;
	}
	zlock_unlock(&a->lock);
	if (refaulted) {
		bool shared;
		struct tc_stats *st = tc_stats_here(a, &shared);

		tstat_add(&st->refaulted, refaulted, shared);
	}
	return 0;
}

/*
 * The drop-in's realloc (internal): move the first @len bytes (whole pages)
 * of the live allocation @old into the live allocation @new by moving page
 * tables (os_move_pages(): no copy), then free @old.  Its moved pages read
 * zero afterwards, so they go back zeroed and reported (they cost a fault
 * when used again, like reported ones); the rest of @old, if any, dirty.
 * 0, or -errno with @old unchanged and live (then the caller copies): @a
 * NULL, not two live allocations of this arena, @len too long, init_on_free
 * or verify (their free-time writes would take the pages back), or no safe
 * mremap(DONTUNMAP) (os_move_pages()); after a failed move the first @len
 * bytes of @new are undefined, and -ENOTRECOVERABLE means they may not be
 * written at all (part of the mapping is lost): @new must then be left
 * allocated.
 */
int zp_move_and_free(struct zp_arena *a, void *old, void *new, size_t len)
{
	uint32_t pfn = a ? addr_to_pfn(a, old) : NIL, info;
	size_t n, moved = len >> ZP_PAGE_SHIFT;
	int err;

	if (pfn == NIL || addr_to_pfn(a, new) == NIL || (len & (ZP_PAGE_SIZE - 1)) || !len ||
	    ((char *)new < (char *)old + len && (char *)old < (char *)new + len) ||
	    (a->flags & (ZP_INIT_ON_FREE | ZP_VERIFY)) || len > zp_usable_size(a, old) || len > zp_usable_size(a, new))
		return -EINVAL;
	info = pg_info(&a->pages[pfn]);
	if ((info & PG_OWNER_MASK) != PG_ALLOC)
		return -EINVAL;
	/* ours first (a racing free then fails), then the move */
	if (!claim_alloc(a, pfn, info, (info & ~(PG_ALLOC | PG_TAG_MASK)) | PG_BUSY))
		return -EINVAL;
	err = os_move_pages(old, new, len, !(a->flags & ZP_NOHUGEPAGE));
	if (err) {
		pg_set_info(&a->pages[pfn], info); /* live again, unchanged */
		return err;
	}
	n = head_pages(a, pfn, info);
	daemon_ensure(a);
	zs_mark_reported(a, pfn, moved, true); /* in flight (PG_busy): nobody judges it */
	zlock_lock(&a->lock);
	free_range_locked(a, pfn, pfn, pfn + n, free_stamp(a, n));
	zlock_unlock(&a->lock);
	return 0;
}

size_t zp_usable_size(struct zp_arena *a, const void *addr)
{
	uint32_t pfn, info;

	if (!a || (pfn = addr_to_pfn(a, addr)) == NIL)
		return 0;
	info = pg_info(&a->pages[pfn]);
	if ((info & PG_OWNER_MASK) != PG_ALLOC)
		return 0;
	return head_pages(a, pfn, info) << ZP_PAGE_SHIFT;
}
