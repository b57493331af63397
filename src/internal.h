/* SPDX-License-Identifier: MIT */
/*
 * zpage internals: the arena, its page descriptors and the prototypes of
 * every source file, grouped under the name of the file that defines them.
 *
 * Memory layout of an arena
 * -------------------------
 *   base                                    base + nr_pages * ZP_PAGE_SIZE
 *   |<- block of 2^max_order pages ->|<- ... ->|<- smaller tail blocks ->|
 *
 * base is aligned to the largest block (and to 2 MiB), so a block of order
 * o starting at pfn p is aligned in memory iff p % 2^o == 0.  Metadata lives
 * in a separate mapping: one struct page (12 bytes) per page and two bitmaps
 * (1 bit per page each): 12.25 bytes of metadata per 4 KiB page.
 *
 * Ownership of a block, told by the info word of its first ("head") page:
 *
 *   PG_buddy  free, on a buddy free list            (arena->lock)
 *   PG_cache  free, in a thread's cache             (its owner; tc_lock
 *             and the handshake of tcache.c for anyone else)
 *   PG_alloc  handed out to the caller              (the caller)
 *   PG_busy   in flight: being allocated or freed, or isolated by a
 *             reporting / pre-zeroing pass          (the thread holding it)
 *
 * Every page that is not a head has info == 0 ("tail").  Every page below
 * a->frontier belongs to exactly one block, so walking heads by 2^order
 * (an exact allocation's head by its page count) covers [0, frontier) exactly: this is the first thing zp_arena_check()
 * proves.  Pages at and above the frontier were never used and belong to
 * no block yet (buddy.c).
 *
 * Zero state is per page, in two bitmaps stored inverted (zero_state.c), so
 * that fresh memory's state is untouched, all-zero metadata:
 *   dirty_bm     page not known to read as zero (zeroing requests clear it)
 *   resident_bm  page not handed back to the OS (reported ones cost a fault)
 * Allocated pages are neither zeroed nor reported (both bits set): their
 * content is the caller's.
 * A free block is listed by the summary of its pages (zs_summary()).
 */
#ifndef ZPAGE_INTERNAL_H
#define ZPAGE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lock.h"
#include "os.h"
#include "zpage.h"

#ifdef __GNUC__
#define likely(x)	    __builtin_expect(!!(x), 1)
#define unlikely(x)	    __builtin_expect(!!(x), 0)
/* The allocation and free paths are built of small functions shared by
 * several callers, where GCC stops inlining them (which once cost the
 * order-0 pair ~15%: pairs, bench/ab.sh): force it, and keep the slow
 * parts out (ZP_NOINLINE), so that the everyday calls stay leaves.
 * For static functions only (a non-static C11 inline definition would need
 * an external one elsewhere). */
#define ZP_ALWAYS_INLINE    inline __attribute__((always_inline))
#define ZP_NOINLINE	    __attribute__((noinline))
#else
#define likely(x)	    (x)
#define unlikely(x)	    (x)
#define ZP_ALWAYS_INLINE    inline
#define ZP_NOINLINE
#endif

#define NIL	  UINT32_MAX
#define NR_ORDERS (ZP_MAX_ORDER_LIMIT + 1)

/* Orders served from the per-thread caches. */
#define TC_MAX_ORDER 8u
/* Slots of an arena's table of caches (tcache.c, "bias"); slot 0 is none,
 * and a cache made when every other slot is taken has none. */
#define TC_SLOTS 1024u
/* Tickets of claimers without a slot (tcache.c): TC_SLOTS up to
 * TC_SLOTS + TC_TICKETS - 1, each held for one claim. */
#define TC_TICKETS 1024u

/* Free-list states, in the order a zeroing request prefers them. */
enum zstate { ZS_ZEROED = 0, ZS_DIRTY = 1, ZS_REPORTED = 2, NR_ZSTATES = 3 };

/*
 * info word of a page descriptor:
 *   bits 0-4   order (meaningful in a head)
 *   bit 5      PG_FULL: with PG_cache, every page of the block is dirty and
 *              resident, as an allocated block's are (set exactly then)
 *   bits 8-11  PG_buddy / PG_cache / PG_alloc / PG_busy (exactly one in a head)
 *   bits 12-13 enum zstate of the list a free head is on
 *   bit 14     PG_EXACT: an exact-size allocation (zp_alloc) of n pages, n in
 *              the head's next field, 2^(order-1) < n < 2^order; its pages
 *              beyond n are free blocks of their own
 *   bit 15     PG_COLD: with PG_cache, a block a refill brought from the
 *              buddy lists (not one this thread freed here) and did not
 *              find warm (clear.c): cold as far as the allocation path can
 *              tell
 *   bits 16-31 with PG_buddy: the block's warmth stamp, when it was last
 *              given back to the buddy lists (after a merge, the oldest of
 *              its parts'; clear.c, warm_now()); 0: not
 *              known to be warm
 *              with PG_alloc (not PG_EXACT): the block's tag, the slot of
 *              the cache whose owner allocated it (tcache.c, "bias"), when
 *              that cache serves its order; 0: none
 *              with PG_busy: 0, or the ticket of the claim of a tagged
 *              block (the claimer's slot, or a pool's ticket it held for
 *              the claim; tcache.c), until the claimer puts it away
 */
#define PG_ORDER_MASK  0x1fu
#define PG_BUDDY       0x100u
#define PG_CACHE	       0x200u
#define PG_ALLOC       0x400u
#define PG_BUSY	       0x800u
#define PG_OWNER_MASK  (PG_BUDDY | PG_CACHE | PG_ALLOC | PG_BUSY)
#define PG_STATE_SHIFT 12
#define PG_EXACT       0x4000u /* with PG_alloc or PG_busy: an exact-size allocation of
				  pages[head].next pages, order = the block it came from */
#define PG_COLD	       0x8000u /* with PG_cache: brought by a refill, not freed here, not warm */
#define PG_FULL	       0x20u   /* with PG_cache: every page dirty and resident (and only then) */
#define PG_STAMP_SHIFT 16
#define PG_TAG_SHIFT   16
#define PG_TAG_MASK    0xffff0000u

struct page {
	uint32_t next, prev;   /* free-list links (pfns) in listed heads; in tail
				  pages, the summary tree's slots (buddy.c); in
				  an exact allocation's head, next = its pages */
	_Atomic uint32_t info; /* see above; atomic so that a bad free can be refused safely */
};

static inline uint32_t pg_info(const struct page *p)
{
	return atomic_load_explicit(&p->info, memory_order_acquire);
}
static inline void pg_set_info(struct page *p, uint32_t v)
{
	atomic_store_explicit(&p->info, v, memory_order_release);
}
static inline unsigned pg_order(uint32_t info)
{
	return info & PG_ORDER_MASK;
}
/* Pages from a head with @info at @pfn: 2^order, or an exact allocation's n. */
#define head_pages(a, pfn, info) (((info) & PG_EXACT) ? (size_t)(a)->pages[pfn].next : (size_t)1 << pg_order(info))
static inline enum zstate pg_state(uint32_t info)
{
	return (enum zstate)((info >> PG_STATE_SHIFT) & 3u);
}
static inline uint32_t mk_info(uint32_t owner, unsigned order, enum zstate st)
{
	return owner | order | ((uint32_t)st << PG_STATE_SHIFT);
}
static inline uint16_t pg_stamp(uint32_t info)
{
	return (uint16_t)(info >> PG_STAMP_SHIFT);
}

/* A doubly linked list of free blocks, threaded through struct page by pfn. */
struct free_list {
	uint32_t head, tail;
	size_t nr; /* blocks */
};

/* Page counts of a set of free blocks. */
struct zcount {
	size_t pages;	 /* all pages */
	size_t zeroed;	 /* zeroed and not reported: resident zero pages */
	size_t reported; /* reported (handed back to the OS) */
	size_t dirty;	 /* not known zero: must be cleared before a zeroing use */
	size_t lazy;	 /* reported and dirty: given back to an OS that may keep the
			    old contents (MADV_FREE); writing them would take them back */
};

/* Event counters of the allocation and free paths, per thread (struct
 * tcache) so that the steady state writes no cache line another thread
 * writes; summed when read.  A cache's are written by its owner only, with
 * a plain load and store (tstat_add()). */
struct tc_stats {
	_Atomic uint64_t cleared;   /* pages zero-filled (allocation, init_on_free) */
	_Atomic uint64_t skipped;   /* pages handed out zeroed without a clear */
	_Atomic uint64_t refaulted; /* reported pages allocated */
};

/* A thread's cache of free blocks of order 0..TC_MAX_ORDER of one arena, by
 * state, and that thread's event counters (tcache.c). */
struct tcache {
	_Atomic int active; /* the owner is on its lists */
	_Atomic int stop;   /* a quiescer wants them: the owner keeps off */
	/* the bias (tcache.c): tag set when the cache is made; the rest
	 * written by the owner while active, by a claimer while the cache is
	 * stopped and inactive, or as the cache leaves its arena */
	uint32_t tag;	      /* slot << PG_TAG_SHIFT in the arena's table; 0: none */
	bool biased;	      /* the arena's tc_mode[slot] is odd: the owner frees its blocks plainly */
	uint32_t bias_count;  /* the owner's compare-and-swap frees of its own blocks since... */
	uint32_t bias_period; /* ...it was last revoked; at bias_period it biases again */
	struct free_list lists[TC_MAX_ORDER + 1][NR_ZSTATES];
	size_t pages; /* in its blocks (their zero state is counted when read) */
	struct tc_stats stats;
	_Atomic(struct zp_arena *) arena; /* NULL once the arena is destroyed */
	uint64_t arena_id;
	struct tcache *next, *prev; /* the arena's caches, under tc_lock */
	struct tcache *thread_next; /* the owner's caches (the owner's only) */
	const void *owner;	    /* the owner's thread record */
} __attribute__((aligned(64)));

/* The caches of an arena, summed (tc_sum(), every lock held). */
struct tc_totals {
	struct zcount cnt;
	size_t blocks[TC_MAX_ORDER + 1][NR_ZSTATES];
	uint64_t cleared, skipped, refaulted;
	unsigned nr_caches;
};

static inline void tstat_add(_Atomic uint64_t *c, uint64_t v, bool shared)
{
	if (!v)
		return;
	if (shared)
		atomic_fetch_add_explicit(c, v, memory_order_relaxed);
	else
		atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v, memory_order_relaxed);
}

/* One event of the clearing layer, seen by the test hook. */
struct clear_event {
	size_t pfn;	     /* first page cleared */
	size_t nr_pages;     /* how many */
	bool nt;	     /* non-temporal stores */
	bool user_path;	     /* cleared through the user-congruent path */
	uintptr_t user_addr; /* user address of the first page (user path), else ZP_USER_ADDR_NONE */
	bool hot;	     /* a hot block's clear (clear_small_dirty_block()) */
	const char *impl;    /* the primitive's name (zero_impls[]) */
};
typedef void (*clear_hook_fn)(void *ctx, const struct clear_event *ev);

struct zp_arena {
	/* immutable after creation */
	char *base; /* managed range, aligned to the largest block */
	size_t nr_pages;
	unsigned max_order;
	unsigned flags; /* ZP_* arena flags */
	unsigned report_order;
	unsigned merge_order; /* free_one_page() merges below it; from it up, merges are owed (buddy.c) */
	unsigned report_delay_ms;
	size_t prezero_bytes;
	struct page *pages;	     /* nr_pages descriptors */
	_Atomic uint64_t *dirty_bm;    /* one bit per page: not known zero */
	_Atomic uint64_t *resident_bm; /* one bit per page: not handed back to the OS */
	uint64_t id;		    /* unique in the process: how a thread finds its cache */
	unsigned tc_orders;	    /* orders below this use the caches (0 = none) */
	/* the everyday paths' gates, one compare each: orders below them may
	 * take the inline cache path of zp_alloc_pages() and zp_free_pages().
	 * fast_alloc_orders is tc_orders; fast_free_orders too, but 0 under
	 * ZP_INIT_ON_FREE or ZP_VERIFY (a free writes or checks the block).
	 * Both are 0 while daemon_restart is set, so that a forked child's
	 * first call goes the whole way, which starts its thread
	 * (gates_update(): whoever changes tc_orders or daemon_restart).
	 * They close only while no other thread can be on the paths (the
	 * arena's creation, the fork's child handler, the test switch of an
	 * idle arena) and reopen under the arena lock: the free's general way
	 * trusts its gate as the inline try did, without testing the flags or
	 * the restart again. */
	_Atomic unsigned char fast_alloc_orders, fast_free_orders;
	/* a hot cached block without an address may be cleared inline
	 * (alloc_zeroed_hot()) with the stores clear_small_dirty_block() would
	 * pick: clear_inline for one above SMALL_CACHED_MAX, the cached
	 * primitive being rep stosb (zero_stosb_inline()); clear_inline_small
	 * for one of at most SMALL_CACHED_MAX, the small primitive being the
	 * 32-byte stores (zero_vec_inline()); both only while no test hook
	 * watches clears or asks for page-by-page ones (clear.c keeps them so;
	 * the hooks are set while the arena is idle).  Beside id, which the
	 * same allocation has just read, not on the arena lock's line. */
	bool clear_inline, clear_inline_small;
	struct tcache *tcaches;	    /* under tc_lock: the threads' caches of this arena */
	/* the bias (tcache.c): per slot, its cache (under tc_lock; NULL: free)
	 * and its mode, an epoch whose odd values mean biased */
	struct tcache *tc_slot[TC_SLOTS];
	_Atomic uint32_t tc_mode[TC_SLOTS];
	struct tc_stats tc_gone;    /* counters of caches gone, and of threads without one */
	void *map_addr, *meta_addr; /* what to munmap */
	size_t map_len, meta_len;
	/* set in a forked child whose arena wants a background thread: start
	 * one at the next allocation, free or pass (daemon_ensure()) */
	atomic_bool daemon_restart;

	/* clearing policy (clear.c) */
	size_t nt_min_bytes; /* runs at least this long use non-temporal stores */
	unsigned hot_pages;  /* neighbourhood half-width around the target page */
	/* warmth (clear.c): a block of warm_min_order to warm_max_order given
	 * back to the buddy lists at most warm_units stamp units ago is cleared
	 * with cached stores; warm_units 0: never */
	unsigned warm_units, warm_min_order, warm_max_order;
	uint16_t warm_last;		 /* under lock: the newest stamp read */
	uint64_t (*warm_clock)(void *ctx); /* test-only: nanoseconds, instead of os_now_ns() */
	void *warm_clock_ctx;
	bool aliasing;	     /* test-only: simulate an aliasing data cache */
	clear_hook_fn clear_hook;
	void *clear_hook_ctx;

	/* buddy allocator, under lock */
	struct zlock lock;
	struct free_list free[NR_ORDERS][NR_ZSTATES];
	struct zcount cnt; /* pages on the buddy lists */
	/* pages at and above it were never used and are on no list (written
	 * under lock, read without it as a hint) */
	_Atomic size_t frontier;
	/* bit o set iff free[o][state] is not empty; written under lock, read
	 * without it as a hint by the threads' caches */
	_Atomic uint32_t nonempty[NR_ZSTATES];
	/* the merge owed at each order of merge_order or more: the lower half
	 * of the one pair of buddies of that order both listed, or NIL
	 * (buddy.c); made when a second pair forms there, or by a request
	 * (or grow in place) of a larger order (coalesce()) */
	uint32_t owed[NR_ORDERS];

	/* reporting and pre-zeroing (report.c); state under lock */
	struct zp_backend backend;
	bool report_zeroes;  /* backend.zeroes, confirmed by the start-up self-test */
	size_t prezero_rate; /* ZP_PREZERO thread cap, bytes per second */
	pthread_t daemon;
	bool daemon_running;	     /* under lock: this process owns a running thread */
	atomic_bool daemon_stop;     /* destroy asks the thread and its pass to stop */
	bool report_pending;	     /* under lock: a large block was freed since the last pass */
	uint64_t report_due_ms;	     /* under lock: when the scheduled pass runs; 0 = none */
	uint64_t prezero_resume_ms;  /* under lock: rate cap or quiet period, no pre-zero burst before this */
	unsigned prezero_quiet_ms;   /* under lock: pre-zero only after this long without a buddy
					allocation or free (0: no such wait; the drop-in sets it); and
					a report pass after a report delay of such quiet gives back
					the pre-zero reserve too */
	uint64_t last_activity_ms;   /* under lock, with prezero_quiet_ms: the last buddy allocation or free */
	bool in_putback;	     /* under lock: a pass is putting blocks back (not activity) */
	pthread_cond_t daemon_cond;  /* with lock */
	uint64_t daemon_sleeps;	     /* under lock: times the thread went to sleep */
	struct free_list isolated;   /* under lock: blocks a report / pre-zero pass holds */
	size_t isolated_pages;	     /* under lock: their pages */
	size_t fork_putback_pages;   /* in a forked child: what passes held at the fork */
	pthread_cond_t putback_cond; /* with lock: signalled when a pass puts blocks back */

	/* the registry of live arenas, for the fork handlers (arena.c) */
	struct zp_arena *reg_next, *reg_prev;

	/* statistics of the passes (updated under lock) and rare events; the
	 * allocation path's are per thread (struct tc_stats) */
	_Atomic uint64_t pages_prezeroed;
	_Atomic uint64_t pages_cleared; /* by pre-zeroing; see also tc_stats */
	_Atomic uint64_t pages_reported;
	_Atomic uint64_t verify_failures;
#ifdef ZPAGE_DEBUG_COUNTS
	/* alloc_zeroed_hot()'s clears (the sanitizer builds' tests read it),
	 * last: off the lines the everyday paths read */
	_Atomic uint64_t dbg_inline_clears;
#endif
};

static inline char *pfn_to_addr(const struct zp_arena *a, size_t pfn)
{
	return a->base + (pfn << ZP_PAGE_SHIFT);
}
static inline void stat_add(_Atomic uint64_t *c, uint64_t v)
{
	if (v)
		atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

/* lists (buddy.c; list_init inline), shared by buddy.c, tcache.c and report.c,
 * under the lock of whoever owns the list */
static inline void list_init(struct free_list *l)
{
	l->head = l->tail = NIL;
	l->nr = 0;
}
static inline void list_add(struct zp_arena *a, struct free_list *l, uint32_t pfn, bool tail)
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

static inline void list_del(struct zp_arena *a, struct free_list *l, uint32_t pfn)
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

/* list_del() of the first block of @l (whose prev is NIL). */
static inline void list_del_head(struct zp_arena *a, struct free_list *l, uint32_t pfn)
{
	struct page *p = &a->pages[pfn];
	uint32_t next = p->next;

	l->head = next;
	if (next != NIL)
		a->pages[next].prev = NIL;
	else
		l->tail = NIL;
	p->next = NIL;
	l->nr--;
}

/* zero_state.c: the per-page zeroed / reported bitmaps */
void zs_count(const struct zp_arena *a, size_t pfn, size_t n, struct zcount *c);
enum zstate zs_summary(const struct zcount *c);
/*
 * Are all pages of a block aligned to its size dirty and resident (as an
 * allocated block's are)?  Up to 64 pages one word of each bitmap, larger
 * blocks whole words.  The allocation path's usual case, told without
 * counting bits.
 */
static inline bool zs_small_all_dirty(const struct zp_arena *a, size_t pfn, unsigned order)
{
	static const uint64_t mask[7] = {0x1, 0x3, 0xf, 0xff, 0xffff, 0xffffffff, ~0ull};
	uint64_t m;

	if (order > 6) { /* whole words */
		for (size_t w = pfn >> 6; w < (pfn + ((size_t)1 << order)) >> 6; w++)
			if ((atomic_load_explicit(&a->dirty_bm[w], memory_order_relaxed) &
			     atomic_load_explicit(&a->resident_bm[w], memory_order_relaxed)) != ~0ull)
				return false;
		return true;
	}
	m = mask[order] << (pfn & 63);
	return (atomic_load_explicit(&a->dirty_bm[pfn >> 6], memory_order_relaxed) &
		atomic_load_explicit(&a->resident_bm[pfn >> 6], memory_order_relaxed) & m) == m;
}
void zs_mark_zeroed(struct zp_arena *a, size_t pfn, size_t n);
void zs_mark_reported(struct zp_arena *a, size_t pfn, size_t n, bool zeroes); /* zeroes: backend zero-fills */
void zs_clear(struct zp_arena *a, size_t pfn, size_t n); /* neither zeroed nor reported */
void zs_unzero(struct zp_arena *a, size_t pfn);		 /* one page loses its zero bit */
bool zs_test_zero(const struct zp_arena *a, size_t pfn);
bool zs_test_reported(const struct zp_arena *a, size_t pfn);
size_t zs_next(const struct zp_arena *a, size_t pfn, size_t end, bool zero); /* next page whose zero bit == zero */
size_t zs_next_clearable(const struct zp_arena *a, size_t pfn, size_t end, bool clearable); /* dirty, not reported */
static inline void zcount_add(struct zcount *d, const struct zcount *s)
{
	d->pages += s->pages;
	d->zeroed += s->zeroed;
	d->reported += s->reported;
	d->dirty += s->dirty;
	d->lazy += s->lazy;
}
/* Are all the pages counted in @c in one state (so either half has half of
 * each count)?  Zeroed, dirty resident, reported zero and lazy partition
 * the pages. */
static inline bool zcount_uniform(const struct zcount *c)
{
	return c->zeroed == c->pages || c->dirty - c->lazy == c->pages || c->reported - c->lazy == c->pages ||
	       c->lazy == c->pages;
}
static inline void zcount_sub(struct zcount *d, const struct zcount *s)
{
	d->pages -= s->pages;
	d->zeroed -= s->zeroed;
	d->reported -= s->reported;
	d->dirty -= s->dirty;
	d->lazy -= s->lazy;
}

/* buddy.c: free lists per order and state; callers hold a->lock */
void buddy_init(struct zp_arena *a);
#define ALL_STATES ((1u << NR_ZSTATES) - 1)
/* @warm (may be NULL): a zeroing request's block is warm (clear.c, warm_block()) */
uint32_t rmqueue_smallest(struct zp_arena *a, unsigned order, bool want_zero, unsigned states, struct zcount *out,
			  bool *warm);
/* The state a request of @want_zero tries @r-th (0 first). */
static inline enum zstate state_of_rank(int r, bool want_zero)
{
	static const unsigned char by_rank[2][NR_ZSTATES] = {
		{ZS_DIRTY, ZS_ZEROED, ZS_REPORTED},
		{ZS_ZEROED, ZS_DIRTY, ZS_REPORTED},
	};
	return (enum zstate)by_rank[want_zero][r];
}
#define STAMP_NOW 0x10000u /* free_one_page(): its caller wrote the block a moment ago */
void free_one_page(struct zp_arena *a, uint32_t pfn, unsigned order, uint32_t stamp);
void del_from_free_list(struct zp_arena *a, uint32_t pfn, unsigned order, enum zstate st,
			struct zcount *out); /* head info -> 0; its counts into @out (may be NULL) */
void block_count(const struct zp_arena *a, uint32_t pfn, unsigned order, struct zcount *c); /* listed block */
/* Pages never used: free, zeroed, reported, unlisted (an unlocked hint). */
static inline size_t frontier_pages(const struct zp_arena *a)
{
	return a->nr_pages - atomic_load_explicit(&a->frontier, memory_order_relaxed);
}
/* Do the buddy lists (or the frontier) probably have a block of @order or
 * larger in state @st?  An unlocked hint. */
static inline bool buddy_may_have(struct zp_arena *a, unsigned order, enum zstate st)
{
	return (atomic_load_explicit(&a->nonempty[st], memory_order_relaxed) >> order) ||
	       (st == ZS_REPORTED && frontier_pages(a));
}
#define NODE_MIN_ORDER 6 /* smaller blocks fit in a bitmap word: counted from it */
/* free_one_page() merges eagerly up to merge_order: this order (2 MiB, the
 * kernel's pageblock), or report_order if larger, or max_order if smaller;
 * from there up one pair per order waits to merge (a->owed), so that a
 * small split and merge crosses the same levels at any max_order */
#define PAGEBLOCK_ORDER 9
enum expand_keep {
	KEEP_FOR_ZERO,	  /* the half a zeroing request prefers */
	KEEP_FOR_NONZERO, /* the half a non-zeroing request prefers */
	KEEP_CLEARABLE,	  /* the half with more resident dirty pages (pre-zeroing) */
};
uint32_t expand(struct zp_arena *a, uint32_t pfn, unsigned high, unsigned low, enum expand_keep keep,
		struct zcount *c, uint16_t stamp);
void coalesce(struct zp_arena *a, unsigned order); /* the merges owed below @order */
int state_rank(enum zstate st, bool want_zero);

/* tcache.c: per-thread caches of orders 0..TC_MAX_ORDER */
extern struct zlock tc_lock;
void tc_init(struct zp_arena *a);
void tc_destroy(struct zp_arena *a);
uint32_t rmqueue_tcache(struct zp_arena *a, unsigned order, bool want_zero, bool *hot);
void free_tcache(struct zp_arena *a, uint32_t pfn, unsigned order, bool all_dirty);
void drain_all_pages(struct zp_arena *a);
void drain_all_pages_locked(struct zp_arena *a); /* lock_all() held */
static inline bool tc_serves(const struct zp_arena *a, unsigned order)
{
	return order < a->tc_orders;
}
/* Set the everyday paths' gates from tc_orders, the flags and daemon_restart. */
static inline void gates_update(struct zp_arena *a)
{
	bool pending = atomic_load_explicit(&a->daemon_restart, memory_order_relaxed);
	unsigned char n = pending ? 0 : (unsigned char)a->tc_orders;

	atomic_store_explicit(&a->fast_alloc_orders, n, memory_order_relaxed);
	atomic_store_explicit(&a->fast_free_orders, a->flags & (ZP_INIT_ON_FREE | ZP_VERIFY) ? 0 : n,
			      memory_order_relaxed);
}
/* May @order take the everyday inline path?  Relaxed loads: a gate only
 * opens while threads run (above), and a stale closed one costs the whole
 * way once, which starts an owed thread itself. */
static ZP_ALWAYS_INLINE bool fast_alloc(const struct zp_arena *a, unsigned order)
{
	return order < atomic_load_explicit(&a->fast_alloc_orders, memory_order_relaxed);
}
static ZP_ALWAYS_INLINE bool fast_free(const struct zp_arena *a, unsigned order)
{
	return order < atomic_load_explicit(&a->fast_free_orders, memory_order_relaxed);
}
struct tc_stats *tc_stats_here(struct zp_arena *a, bool *shared); /* this thread's counters */

/*
 * The owner's fast path, inline in the allocation and free paths
 * (page_alloc.c); tcache.c has the whole way (a cache to make, a quiescer
 * to wait for, a refill, a drain) and the handshake's description.
 */
#define TC_HIGH_PAGES  1024 /* a cache above this after a free drains its largest lists */
#define TC_BATCH_PAGES 16   /* a refill brings this many pages, at least one block */

#if defined(__SANITIZE_THREAD__)
#define TC_ASYM_OK 0
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TC_ASYM_OK 0
#else
#define TC_ASYM_OK 1
#endif
#else
#define TC_ASYM_OK 1
#endif

/* One per thread: the caches it owns, and the one it used last. */
struct tc_thread {
	struct tcache *last;
	uint64_t last_id; /* last->arena_id, or 0 */
	struct tcache *caches;
	bool exited; /* its destructor ran: later calls (other keys' destructors) get no cache */
	bool keyed;  /* tc_key is set for this thread (its destructor will run) */
	unsigned map_backoff; /* lookups that make no cache, after one could not be mapped */
};
#define TC_MAP_BACKOFF 1024 /* lookups between two tries to map a cache that failed */
extern __thread struct tc_thread tc_self __attribute__((tls_model("initial-exec")));
/* membarrier registered: owners use a compiler barrier.  Hidden, as all of
 * the library's internals are (-fvisibility=hidden covers definitions
 * only): a declaration that says so is read straight off the instruction
 * pointer, not through the GOT, on the everyday paths. */
extern bool tc_asym __attribute__((visibility("hidden")));
void tc_drain_high(struct zp_arena *a, struct tcache *t); /* the owner, active or under tc_lock */
int tc_drain_high_leave(struct zp_arena *a, struct tcache *t); /* the same, then tc_leave(); 0 */
void tc_rebias(struct zp_arena *a, struct tcache *t);		 /* the owner, active */
/* Claim the allocated block at @pfn (head @info, tagged with another
 * thread's cache): its head becomes @busy (PG_busy) or, false, it changed. */
bool tc_claim_tagged(struct zp_arena *a, uint32_t pfn, uint32_t info, uint32_t busy);

/* This thread's cache for @a if it is the one it used last, else NULL. */
static ZP_ALWAYS_INLINE struct tcache *tc_mine(const struct zp_arena *a)
{
	return likely(tc_self.last_id == a->id) ? tc_self.last : NULL;
}

/* The owner's side of the handshake: true, on its lists; false when a
 * quiescer wants them (then off them again: the caller goes the whole way). */
static ZP_ALWAYS_INLINE bool tc_try_enter(struct tcache *t)
{
	if (TC_ASYM_OK && likely(tc_asym)) {
		atomic_store_explicit(&t->active, 1, memory_order_relaxed);
		atomic_signal_fence(memory_order_seq_cst);
	} else {
		atomic_store_explicit(&t->active, 1, memory_order_seq_cst);
	}
	if (likely(!atomic_load_explicit(&t->stop, memory_order_seq_cst)))
		return true;
	atomic_store_explicit(&t->active, 0, memory_order_release);
	return false;
}

/* @t is this thread's, and (tc_assert_entered()) it is on its lists: the
 * lock rules' build (ZPAGE_LOCKDEP) checks what the everyday paths assume. */
#ifdef ZPAGE_LOCKDEP
#define tc_assert_owner(t)                                                                                             \
	do {                                                                                                           \
		if ((t)->owner != (const void *)&tc_self)                                                              \
			lockdep_fail("its own thread cache", __FILE__, __LINE__, __func__);                            \
	} while (0)
#define tc_assert_entered(t)                                                                                           \
	do {                                                                                                           \
		tc_assert_owner(t);                                                                                    \
		if (!atomic_load_explicit(&(t)->active, memory_order_relaxed))                                         \
			lockdep_fail("its thread cache's active section", __FILE__, __LINE__, __func__);               \
	} while (0)
#else
#define tc_assert_owner(t)   ((void)(t))
#define tc_assert_entered(t) ((void)(t))
#endif

static ZP_ALWAYS_INLINE void tc_leave(struct tcache *t)
{
	atomic_store_explicit(&t->active, 0, memory_order_release);
}

/* Put a free block (head PG_busy or fresh from the buddy: @cold) in @t;
 * @all_dirty: its caller knows every page of it is dirty and resident (a
 * block freed without init_on_free: an allocated block's pages are), so
 * the bitmaps need not be read. */
static ZP_ALWAYS_INLINE void tc_add(struct zp_arena *a, struct tcache *t, uint32_t pfn, unsigned order, bool cold,
				    bool all_dirty)
{
	enum zstate st = ZS_DIRTY;
	uint32_t full = PG_FULL;

	if (!all_dirty && unlikely(!zs_small_all_dirty(a, pfn, order))) {
		struct zcount c;

		zs_count(a, pfn, (size_t)1 << order, &c);
		st = zs_summary(&c);
		full = 0;
	}
	pg_set_info(&a->pages[pfn], mk_info(PG_CACHE, order, st) | full | (cold ? PG_COLD : 0));
	list_add(a, &t->lists[order][st], pfn, false);
	t->pages += (size_t)1 << order;
}

/* Take @pfn, the first block of @t's list @l of @order, off @t; its head
 * becomes @owner (PG_busy, or PG_alloc for the everyday allocation). */
static ZP_ALWAYS_INLINE void tc_del_head(struct zp_arena *a, struct tcache *t, struct free_list *l, uint32_t pfn,
					 unsigned order, uint32_t owner)
{
	list_del_head(a, l, pfn);
	t->pages -= (size_t)1 << order;
	pg_set_info(&a->pages[pfn], mk_info(owner, order, 0));
}

/* Take @pfn, of @order and on @t's list @st, off @t; its head becomes PG_busy. */
static ZP_ALWAYS_INLINE void tc_del(struct zp_arena *a, struct tcache *t, uint32_t pfn, unsigned order, enum zstate st)
{
	list_del(a, &t->lists[order][st], pfn);
	t->pages -= (size_t)1 << order;
	pg_set_info(&a->pages[pfn], mk_info(PG_BUSY, order, 0));
}

/*
 * rmqueue_tcache() for a zeroing request without leaving the caller, in
 * this thread's cache @t of @a, entered (tc_try_enter()), which it leaves:
 * the first block in the zeroing state preference order, unless a refill
 * comes first (a state whose list is empty here but which the buddy lists
 * probably have); @hot: it was freed here, not brought by a refill, or a
 * zeroing refill found it warm (a guess that its lines are still in this
 * core's caches); @full: its head had PG_FULL (every page dirty and
 * resident); both set only when a block is returned.  NIL otherwise: the
 * caller then goes the whole way, which decides the same.
 */
static ZP_ALWAYS_INLINE uint32_t rmqueue_tcache_zero(struct zp_arena *a, struct tcache *t, unsigned order, bool *hot,
						     bool *full)
{
	uint32_t pfn = NIL;

	tc_assert_entered(t);
	for (int r = 0; r < NR_ZSTATES; r++) {
		enum zstate st = state_of_rank(r, true);
		struct free_list *l = &t->lists[order][st];

		if (likely(l->nr)) {
			uint32_t info;

			pfn = l->head;
			info = pg_info(&a->pages[pfn]);
			*hot = !(info & PG_COLD);
			*full = info & PG_FULL;
			tc_del_head(a, t, l, pfn, order, PG_BUSY);
			break;
		}
		if (buddy_may_have(a, order, st))
			break; /* a refill first: the whole way */
	}
	tc_leave(t);
	return pfn;
}

/*
 * The everyday allocation: for a request that does not want zeroing, the
 * newest block on this thread's dirty list of @order when every page of it
 * is dirty (PG_FULL), which changes owner to PG_alloc at once: there is
 * nothing to count, clear or record.  NIL, having done nothing, otherwise
 * (no cache, a quiescer, an empty list, a block with zeroed or reported
 * pages): the caller goes the whole way, which starts from the same list.
 */
static ZP_ALWAYS_INLINE uint32_t rmqueue_tcache_dirty(struct zp_arena *a, unsigned order)
{
	struct tcache *t = tc_mine(a);
	struct free_list *l;
	uint32_t pfn;

	lock_assert_not_held(&a->lock);
	if (unlikely(!t) || unlikely(!tc_try_enter(t)))
		return NIL;
	l = &t->lists[order][ZS_DIRTY];
	pfn = l->head;
	if (likely(pfn != NIL) && likely(pg_info(&a->pages[pfn]) & PG_FULL)) {
		tc_del_head(a, t, l, pfn, order, PG_ALLOC | t->tag);
	} else {
		pfn = NIL;
	}
	tc_leave(t);
	return pfn;
}

/* free_tcache() without leaving the caller; false, having done nothing,
 * when it must go the whole way.  @all_dirty: as tc_add()'s. */
static ZP_ALWAYS_INLINE bool free_tcache_fast(struct zp_arena *a, uint32_t pfn, unsigned order, bool all_dirty)
{
	struct tcache *t = tc_mine(a);

	lock_assert_not_held(&a->lock);
	if (unlikely(!t) || unlikely(!tc_try_enter(t)))
		return false;
	tc_add(a, t, pfn, order, false, all_dirty);
	if (unlikely(t->pages > TC_HIGH_PAGES))
		tc_drain_high_leave(a, t); /* the last call: nothing to keep across it */
	else
		tc_leave(t);
	return true;
}

/* This thread's counters, without leaving the caller when it can. */
static ZP_ALWAYS_INLINE struct tc_stats *tc_stats_fast(struct zp_arena *a, bool *shared)
{
	struct tcache *t = tc_mine(a);

	if (likely(t)) {
		*shared = false;
		return &t->stats;
	}
	return tc_stats_here(a, shared);
}
void tc_sum(struct zp_arena *a, struct tc_totals *s);		   /* lock_all() held */
/* lock_all(): tc_lock, every cache of @a quiesced, then the arena lock */
void lock_all(struct zp_arena *a);
void unlock_all(struct zp_arena *a);
#define lock_assert_all_held(a)                                                                                        \
	do {                                                                                                           \
		lock_assert_held(&tc_lock);                                                                            \
		lock_assert_held(&(a)->lock);                                                                          \
	} while (0)
/* the pieces of lock_all(), for the fork handlers (arena.c) */
void tc_lock_global(void);
void tc_unlock_global(void);
void tc_stop(struct zp_arena *a);
void tc_barrier(void);
void tc_wait(struct zp_arena *a);
void tc_resume(struct zp_arena *a);
void tc_fork_child_global(void);
void tc_fork_child(struct zp_arena *a); /* every lock held */

/* clear.c: the clearing engine */
void clear_init(struct zp_arena *a, size_t hot_bytes, size_t nt_min);
size_t clear_dirty_pages(struct zp_arena *a, size_t pfn, unsigned order, uintptr_t user_addr);
size_t clear_dirty_free_block(struct zp_arena *a, size_t pfn, unsigned order); /* NT, marks what it cleared zeroed */
size_t clear_dirty_range(struct zp_arena *a, size_t pfn, size_t n, unsigned order, uintptr_t user_addr, bool warm);
size_t clear_dirty_free_range(struct zp_arena *a, size_t pfn, size_t n);
bool clear_small_dirty_block(struct zp_arena *a, size_t pfn, unsigned order, uintptr_t user_addr, bool hot);
void zero_cached(void *p, size_t len);
void zero_nt(void *p, size_t len);
/* warmth stamps (arena lock held) */
uint16_t warm_now(struct zp_arena *a);				     /* a stamp for now */
uint16_t warm_older(const struct zp_arena *a, uint16_t s, uint16_t t); /* the older stamp */
bool warm_block(struct zp_arena *a, uint16_t stamp, unsigned order);    /* cleared cached? */
struct zero_impl {
	const char *name;
	void (*fn)(void *p, size_t len);
	bool nt;
	bool (*available)(void);
	bool small; /* cached, preferred for a hot block of at most SMALL_CACHED_MAX */
};
extern const struct zero_impl zero_impls[];
extern const size_t nr_zero_impls;
/* A hot block up to this size is cleared with the small primitive.  Which
 * stores win depends on where the block's lines are: in a standalone loop
 * (rdtsc, not in the repository: a write to each page of a block of a ring,
 * the clear, a write to each page again) on the host of 2026-11-27 (L2 1
 * MiB), 32-byte stores beat rep stosb at every size up to 32 KiB when the
 * ring fits in L2 (16 blocks: 407 against 554 cycles at 32 KiB), but lose
 * once it is larger (128 blocks: 385 against 335 at 16 KiB, a 2 MiB ring,
 * 832 against 724 at 32 KiB; still ahead at 4 and 8 KiB, rings of 512 KiB
 * and 1 MiB: 50 against 57, 119 against 133).  Churn's small blocks have
 * left L2 between two uses (its large clears sweep it): there rep stosb
 * made the zeroing allocations of 8, 16 and 32 KiB 5-9% faster, 8 KiB
 * included (bench/ab.sh; DESIGN 6).  An earlier host had the vector stores
 * 1-5% ahead at 8-32 KiB (7% at 4 KiB) in the 128-block ring. */
#define SMALL_CACHED_MAX ((size_t)4 << 10)
/* rep stosb where the call's own cost shows: the everyday zeroing
 * allocation of a hot cached block (page_alloc.c: alloc_zeroed_hot(), when
 * a->clear_inline) and clear.c's cached primitive, one instruction both. */
#if defined(__x86_64__)
static ZP_ALWAYS_INLINE void zero_stosb_inline(void *p, size_t len)
{
	__asm__ volatile("rep stosb" : "+D"(p), "+c"(len) : "a"(0) : "memory");
}
#else
static inline void zero_stosb_inline(void *p, size_t len) /* never reached: clear_inline stays false */
{
	__builtin_memset(p, 0, len);
}
#endif
/* 32-byte stores, 128 bytes a turn, over @len bytes (a multiple of 128:
 * any other length would run past the end) at @p (32-byte aligned): the
 * body of the small primitive (clear.c: zero_vec_avx2()) and the inline
 * clear of a hot page (alloc_zeroed_hot(), when a->clear_inline_small,
 * which holds only where the CPU has AVX2).  In asm, so that its callers
 * need no avx2 target (and so the sanitizers do not see these stores);
 * vzeroupper after, so that the SSE code after it pays no transition, and
 * every vector register clobbered, since vzeroupper clears the upper half
 * of each (a build with -mavx2 may keep 256-bit values in them). */
#if defined(__x86_64__)
static ZP_ALWAYS_INLINE void zero_vec_inline(void *p, size_t len)
{
	char *c = p, *end = c + len;

	if (!len)
		return;
	__asm__ volatile("vpxor %%xmm0, %%xmm0, %%xmm0\n\t"
			 "1:\n\t"
			 "vmovdqa %%ymm0, (%0)\n\t"
			 "vmovdqa %%ymm0, 32(%0)\n\t"
			 "vmovdqa %%ymm0, 64(%0)\n\t"
			 "vmovdqa %%ymm0, 96(%0)\n\t"
			 "sub $-128, %0\n\t"
			 "cmp %1, %0\n\t"
			 "jne 1b\n\t"
			 "vzeroupper"
			 : "+r"(c)
			 : "r"(end)
			 : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
			   "xmm12", "xmm13", "xmm14", "xmm15", "memory", "cc");
}
#else
static inline void zero_vec_inline(void *p, size_t len) /* never reached: clear_inline_small stays false */
{
	__builtin_memset(p, 0, len);
}
#endif
const char *zero_cached_name(void);
const char *zero_small_name(void); /* the small cached primitive: a hot block of at most
				      SMALL_CACHED_MAX (cold lines want rep stosb, which does not
				      read them first) */
const char *zero_nt_name(void);

/* report.c: returning memory to the OS, pre-zeroing, the background thread */
int report_init(struct zp_arena *a, bool madv_free);
void report_destroy(struct zp_arena *a);
int daemon_start(struct zp_arena *a);
void daemon_stop(struct zp_arena *a);
void daemon_start_after_fork(struct zp_arena *a);
/* A forked child's arena whose background thread is still to start. */
static inline bool daemon_pending(const struct zp_arena *a)
{
	return __builtin_expect(atomic_load_explicit(&a->daemon_restart, memory_order_relaxed), 0);
}
static inline void daemon_ensure(struct zp_arena *a)
{
	if (daemon_pending(a))
		daemon_start_after_fork(a);
}
void report_fork_child(struct zp_arena *a); /* all locks held */
void wait_for_isolated(struct zp_arena *a); /* lock held; returns when a pass put blocks back */
void note_free_block(struct zp_arena *a, uint32_t pfn, unsigned order); /* lock held */
void note_alloc_block(struct zp_arena *a);				/* lock held */
void zp_test_set_backend(struct zp_arena *a, const struct zp_backend *b);
void zp_test_kick(struct zp_arena *a);
uint64_t zp_test_daemon_sleeps(struct zp_arena *a); /* times the thread went to sleep */
size_t zp_test_isolated_pages(struct zp_arena *a);  /* pages passes hold now */

/* page_alloc.c: the allocation and free paths */
bool page_reads_zero(const struct zp_arena *a, size_t pfn);
int zp_move_and_free(struct zp_arena *a, void *old, void *new, size_t len); /* the drop-in's realloc */
int zp_grow_in_place(struct zp_arena *a, void *addr, size_t size);	    /* the drop-in's realloc */

/* env.c: the ZPAGE_* variables */
enum env_id {
	ENV_REPORT_DELAY_MS,
	ENV_REPORT_ORDER,
	ENV_PREZERO_BYTES,
	ENV_PREZERO_RATE_MB,
	ENV_PRELOAD_MIN,    /* the drop-in's (preload/preload.c) */
	ENV_PRELOAD_ARENA,
	ENV_PRELOAD_NT_MIN,
	NR_ENV
};
bool env_get(enum env_id id, uint64_t *out); /* true: set and valid */
void env_say_clamped(enum env_id id, uint64_t value, uint64_t to, const char *why);

/* arena.c */
void stats_locked(struct zp_arena *a, struct zp_stats *st); /* every lock held */

/* test-only controls (tests link the static library) */
void zp_test_set_clear_hook(struct zp_arena *a, clear_hook_fn fn, void *ctx);
void zp_test_set_aliasing(struct zp_arena *a, bool on);
void zp_test_set_warm_ns(struct zp_arena *a, uint64_t ns); /* 0: no block is warm */
void zp_test_set_warm_clock(struct zp_arena *a, uint64_t (*now_ns)(void *ctx), void *ctx); /* NULL: the OS's */
size_t zp_test_nr_free_blocks(struct zp_arena *a, unsigned order, enum zstate st);
void zp_test_set_pcp(struct zp_arena *a, bool on); /* the caches on or off; drain them first */
void zp_test_drain_pcp(struct zp_arena *a);
void zp_test_tc_force_fences(void);	   /* before the first cache: the fallback handshake */
const char *zp_test_tc_handshake(void);	   /* "membarrier" or "fences" */
unsigned zp_test_tc_thread_caches(void);   /* caches this thread owns */
void zp_test_tc_bias(unsigned first, unsigned max); /* a new cache's wait to bias, its cap (0: default) */
bool zp_test_tc_biased(struct zp_arena *a);	    /* this thread's last cache, on @a and biased */
unsigned long zp_test_tc_bias_settled(void);	    /* claims settled with a cache stopped, so far */
/* alloc_zeroed_hot()'s clears on @a so far, in a build with
 * ZPAGE_DEBUG_COUNTS (the sanitizer builds of `make check`); UINT64_MAX
 * without it */
uint64_t zp_test_inline_clears(struct zp_arena *a);

#endif /* ZPAGE_INTERNAL_H */
