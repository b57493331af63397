/* SPDX-License-Identifier: MIT */
/*
 * tcache.c - per-thread caches of small free blocks (orders 0..TC_MAX_ORDER).
 *
 * Each thread that allocates or frees a small block of an arena gets a cache
 * for that arena: lists per (order, state), so a cache keeps zero state (it
 * never forgets which of its pages are known zero; the per-page bits stay
 * exact and are counted when the cache is read), and the
 * owner works on them without a lock and without an atomic
 * read-modify-write: the steady state of alloc+free writes only the
 * thread's own cache lines and the block's descriptor; a free validates
 * the block with a plain load and store while the cache is biased (below),
 * with a compare-and-swap otherwise.  The owner's usual allocation and free
 * run inline in page_alloc.c (internal.h: rmqueue_tcache_dirty(),
 * rmqueue_tcache_zero(), which alloc_zeroed() uses for the zeroing ones
 * past their usual case, free_tcache_fast(), with tc_try_enter() and
 * tc_add(); page_alloc.c's
 * free_own_fast(), and its compare-and-swap free_own_cas(), out of line);
 * this file has the whole way and everything else.
 *
 * Allocation follows the buddy lists' state preference (buddy.c).  For each
 * state in preference order: take from the cache's list if it has one;
 * otherwise, if the buddy lists probably have a block of that state (an
 * unlocked hint), refill a batch of that state under the arena lock, each
 * block marked PG_COLD unless a zeroing refill finds it warm (clear.c
 * clears a block this thread freed here, or a warm one, as a hot one, a
 * refilled one as a cold one).  So a
 * zeroing request never clears a cached dirty page while a block listed
 * zeroed is free.  A cache above TC_HIGH_PAGES after a free gives its largest
 * lists' oldest blocks back to the buddy lists until it is TC_BATCH_PAGES
 * below the mark.
 *
 * Other threads reach a cache only to quiesce it, or to stop it for a claim
 * (the bias, below) (lock_all(): the slow path
 * before ENOMEM, zp_arena_check(), stats, dump; fork's handlers take the
 * same steps), with an asymmetric Dekker handshake on two flags of the
 * cache:
 *
 *   owner (tc_enter/tc_exit)            quiescer (lock_all)
 *     active = 1                          lock tc_lock
 *     compiler barrier                    stop = 1, for every cache
 *     if stop: active = 0, take tc_lock   membarrier(): a full barrier on
 *              and work under it            every running thread
 *     ... the lists ...                   wait until active == 0, each cache
 *     active = 0 (release)                ... every cache's lists ...
 *                                         stop = 0, unlock tc_lock
 *
 * The inline path (internal.h) does the owner's half as tc_try_enter() /
 * tc_leave(): on stop it leaves at once and goes the whole way, whose
 * tc_enter() tries once more and then waits for tc_lock as above.
 *
 * membarrier() puts a full barrier between the owner's store of active and
 * its load of stop wherever the owner is, so either the quiescer sees
 * active == 1 and waits, or the owner sees stop == 1 and keeps off its
 * lists: the fast path pays no fence.  Where membarrier is refused (an old
 * kernel, a seccomp filter) and under ThreadSanitizer, which cannot see
 * it, both sides use sequentially consistent atomics instead (the owner's
 * store becomes an xchg).
 *
 * The bias.  A free must refuse a racing double free: of two threads
 * freeing one block at once, exactly one succeeds.  A compare-and-swap of
 * the head decides that, at the price of a locked instruction per free.
 * Most blocks are freed by the thread that allocated them, so a block
 * allocated through a cache carries the cache's tag (its slot in the
 * arena's table, in the head's bits 16-31), and a cache whose owner frees
 * its own blocks becomes biased: its owner then frees them with a plain
 * load and store, inside its active section.  Any other free of a tagged
 * block (another thread's) claims it by tc_claim_tagged(), which keeps the
 * one-winner rule against those plain frees:
 *
 *   owner (free_own_fast)                 claimer (tc_claim_tagged)
 *     active = 1, compiler barrier          m1 = mode[slot]
 *     if stop: leave, go the general way    if m1 odd (or no ticket to take):
 *     if biased and head == alloc|tag:        stopped claim (below)
 *       head = cache (plain store)          CAS head alloc|tag -> busy|ticket
 *     active = 0                            if mode[slot] == m1: claimed
 *                                           else: stopped claim, checking
 *   rebias (owner, active): mode[slot]++      the head still reads the ticket
 *     (odd), fence, biased = true
 *                                         stopped claim: tc_lock, the slot's
 *                                         cache stopped (stop = 1, membarrier,
 *                                         wait for active == 0), the CAS (or
 *                                         the ticket's check), mode even
 *                                         (unbiased), resume, unlock
 *
 * mode[slot] is an epoch whose odd values mean biased; only the owner makes
 * it odd, and only with its cache stopped and inactive (or gone) does
 * anyone make it even.  So a claim that read the same even epoch before and
 * after its compare-and-swap overlapped no plain free: one still in flight
 * would have kept the epoch odd, and a rebias after the first read fences
 * before its first plain load, which then sees the claim.  With the cache
 * stopped no plain free runs at all, and the ticket (the claimer's own
 * slot, or a pool's ticket it holds, in the head's bits 16-31, which no
 * other claim writes meanwhile) tells
 * whether a plain free overwrote the claim meanwhile (then that free came
 * first and the claim is refused).  The stop costs a membarrier and
 * unbiases the cache, whose owner must then make bias_period more frees of
 * its own before it biases again, 4 times more after each stop (up to
 * TC_BIAS_MAX): a program that frees across threads pays the stop rarely
 * and the compare-and-swap otherwise, one that does not never pays either.
 * The owner's own frees outside the everyday case (zp_move_and_free(), a
 * quiescer in the way) use the compare-and-swap alone: no plain free of
 * its tag runs meanwhile.  A claimer without a slot of its own (no cache,
 * or one made when every slot was taken) takes a ticket from a pool of
 * TC_TICKETS above the slots for the claim, so that it pays the stop as
 * rarely as anyone.  A cache gives its slot back when it leaves its arena
 * (thread exit, a forked child's other threads), its mode even; its blocks
 * stay tagged with the slot, whose next cache owns them (the rule holds
 * per slot).  A cache made when all TC_SLOTS - 1 slots are taken has none,
 * tags nothing and never biases.
 *
 * A thread's caches go back to their arenas when the thread exits (a
 * pthread key's destructor); an arena destroyed first detaches them and
 * their owner frees them at its next lookup or at exit.  In a forked child
 * only the forking thread survives: every other thread's cache is emptied
 * into the buddy lists and freed (tc_fork_child()).
 *
 * The caches serve orders below min(TC_MAX_ORDER + 1, max_order + 1,
 * report_order): a block of report_order or larger must sit on the buddy
 * lists, where a reporting pass can find it.
 *
 * Lock order: the registry lock, tc_lock, an owner's active section, the
 * arena lock.  An owner never takes tc_lock while active; a quiescer takes
 * the arena lock only after every cache it stopped is inactive.
 *
 * Invariants (zp_arena_check()): a cache with a slot is that slot's, and is
 * biased exactly when the slot's mode is odd; a free slot's mode is even;
 * as many slots are in use as caches have one; a tag (PG_alloc) names a
 * slot below TC_SLOTS, a ticket (PG_busy) is below TC_SLOTS + TC_TICKETS,
 * and only a block of order TC_MAX_ORDER or below, not an exact
 * allocation, carries either.  A cached
 * block's head has PG_CACHE, its
 * order and its list's state, which equals zs_summary() of its pages,
 * PG_FULL exactly when every page of it is dirty and resident (and PG_COLD
 * or not: only a cached head may have either); each
 * cache's pages equals the sum of its blocks' pages; every cache on an
 * arena's list is attached to that arena.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

__thread struct tc_thread tc_self __attribute__((tls_model("initial-exec")));

/* Guards every arena's list of caches and the quiescing handshake. */
struct zlock tc_lock = {PTHREAD_MUTEX_INITIALIZER, 0};
bool tc_asym; /* membarrier registered: owners use a compiler barrier */
static _Atomic unsigned tc_waiters; /* owners waiting for tc_lock in tc_enter() */
static pthread_once_t tc_once = PTHREAD_ONCE_INIT;
static pthread_key_t tc_key;
static bool tc_key_ok;
static _Atomic uint64_t tc_next_id = 1;

static void tc_thread_exit(void *arg);

static bool tc_no_membarrier; /* test hook: as if membarrier were refused */

#define TC_BIAS_FIRST 64u      /* the owner's own frees before a new cache biases */
#define TC_BIAS_MAX   (1u << 24) /* each revocation multiplies the wait by 4, up to this */
static unsigned tc_bias_first = TC_BIAS_FIRST, tc_bias_max = TC_BIAS_MAX; /* test hook */
static _Atomic unsigned long tc_bias_settled;			   /* claims under a stop (tests) */
/* The tickets of claimers without a slot, a bit each: taken for one claim. */
static _Atomic uint64_t tc_tickets[TC_TICKETS / 64];

static pthread_once_t tc_key_once = PTHREAD_ONCE_INIT;

static void tc_key_init(void)
{
	tc_key_ok = pthread_key_create(&tc_key, tc_thread_exit) == 0;
}

/* The key when the library is loaded, so that it is among the process's
 * first 32, which glibc's pthread_setspecific() stores without allocating
 * (a thread's first call may be made in a signal handler). */
__attribute__((constructor)) static void tc_key_at_load(void)
{
	pthread_once(&tc_key_once, tc_key_init);
}

static void tc_global_init(void)
{
	tc_asym = TC_ASYM_OK && !tc_no_membarrier && os_membarrier_register();
	pthread_once(&tc_key_once, tc_key_init);
}

/* How many orders the caches serve: 0..tc_nr_orders() - 1. */
static unsigned tc_nr_orders(const struct zp_arena *a)
{
	unsigned n = TC_MAX_ORDER + 1;

	if (n > a->max_order + 1)
		n = a->max_order + 1;
	if (n > a->report_order)
		n = a->report_order;
	return n;
}

void tc_init(struct zp_arena *a)
{
	a->id = atomic_fetch_add(&tc_next_id, 1);
	a->tc_orders = tc_nr_orders(a);
	gates_update(a);
	a->tcaches = NULL;
	atomic_init(&a->tc_gone.cleared, 0);
	atomic_init(&a->tc_gone.skipped, 0);
	atomic_init(&a->tc_gone.refaulted, 0);
}

/* ---- the owner's side ---- */

static ZP_ALWAYS_INLINE bool tc_enter(struct tcache *t)
{
	if (likely(tc_try_enter(t)))
		return true;
	/* A quiescer holds tc_lock until it is done with the caches: wait for
	 * it, and work under tc_lock (no quiescer can start meanwhile), so an
	 * owner makes progress even against back-to-back quiescers. */
	atomic_fetch_add_explicit(&tc_waiters, 1, memory_order_relaxed);
	zlock_lock(&tc_lock);
	atomic_fetch_sub_explicit(&tc_waiters, 1, memory_order_release);
	return false;
}

/* @entered: what tc_enter() returned. */
static ZP_ALWAYS_INLINE void tc_exit(struct tcache *t, bool entered)
{
	if (likely(entered))
		atomic_store_explicit(&t->active, 0, memory_order_release);
	else
		zlock_unlock(&tc_lock);
}

static void tc_cache_free(struct tcache *t)
{
	os_unmap(t, sizeof(*t));
}

/*
 * A new cache for @a, attached to @a and to this thread.  Its memory is its
 * own mapping, not malloc's, so that a thread's first call on an arena may
 * be made from a signal handler that interrupted malloc (mmap() takes no
 * lock of the process; zero-filled).  NULL when it cannot be mapped or the
 * thread's key cannot be set.  errno may have changed on any return (a
 * failed mmap(); glibc allocates for keys past the first 32).
 */
static struct tcache *tc_cache_make(struct zp_arena *a, struct tc_thread *me)
{
	struct tcache *t = os_map_private(sizeof(*t));

	if (!t)
		return NULL;
	for (unsigned o = 0; o <= TC_MAX_ORDER; o++)
		for (int s = 0; s < NR_ZSTATES; s++)
			list_init(&t->lists[o][s]);
	t->arena_id = a->id;
	t->owner = me;
	if (!me->keyed) {
		if (pthread_setspecific(tc_key, me)) {
			tc_cache_free(t);
			return NULL;
		}
		me->keyed = true;
	}
	t->bias_period = tc_bias_first;
	zlock_lock(&tc_lock);
	for (unsigned s = 1; s < TC_SLOTS; s++) {
		if (!a->tc_slot[s]) { /* its mode is even: detached caches leave it so */
			a->tc_slot[s] = t;
			t->tag = s << PG_TAG_SHIFT;
			break;
		}
	}
	atomic_store_explicit(&t->arena, a, memory_order_relaxed);
	t->prev = NULL;
	t->next = a->tcaches;
	if (a->tcaches)
		a->tcaches->prev = t;
	a->tcaches = t;
	zlock_unlock(&tc_lock);
	t->thread_next = me->caches;
	me->caches = t;
	return t;
}

/* This thread's cache for @a: found, or made and attached.  NULL if none was
 * made (the thread exiting, no key, out of memory now or within the
 * thread's last TC_MAP_BACKOFF lookups that would have made one, whatever
 * the arena): the caller then uses the buddy lists.  errno is kept. */
static struct tcache *tc_lookup_slow(struct zp_arena *a)
{
	struct tc_thread *me = &tc_self;
	struct tcache **pp = &me->caches, *t;
	int saved;

	pthread_once(&tc_once, tc_global_init);
	if (me->exited)
		return NULL;
	while ((t = *pp)) {
		struct zp_arena *ta = atomic_load_explicit(&t->arena, memory_order_acquire);

		if (!ta) { /* its arena was destroyed: nobody else knows it now */
			*pp = t->thread_next;
			tc_cache_free(t);
			continue;
		}
		if (t->arena_id == a->id)
			goto found;
		pp = &t->thread_next;
	}
	if (!tc_key_ok)
		return NULL;
	if (me->map_backoff) { /* out of memory a moment ago: no mmap() a call */
		me->map_backoff--;
		return NULL;
	}
	/* errno is not ours to change: without a cache the call goes on and may
	 * well succeed, and the drop-in's free() must keep it */
	saved = errno;
	t = tc_cache_make(a, me);
	errno = saved;
	if (!t) {
		me->map_backoff = TC_MAP_BACKOFF;
		return NULL;
	}
found:
	me->last = t;
	me->last_id = a->id;
	return t;
}

static ZP_ALWAYS_INLINE struct tcache *tc_get(struct zp_arena *a)
{
	struct tcache *t = tc_mine(a);

	return likely(t) ? t : tc_lookup_slow(a);
}

struct tc_stats *tc_stats_here(struct zp_arena *a, bool *shared)
{
	struct tcache *t = tc_get(a);

	*shared = !t;
	return t ? &t->stats : &a->tc_gone;
}

/* Refill @t with up to a batch of @order blocks in state @st. */
static void tc_refill(struct zp_arena *a, struct tcache *t, unsigned order, enum zstate st, bool want_zero)
{
	unsigned batch = TC_BATCH_PAGES >> order;

	zlock_lock(&a->lock);
	for (unsigned got = 0; got < (batch ? batch : 1); got++) {
		bool warm;
		uint32_t pfn = rmqueue_smallest(a, order, want_zero, 1u << st, NULL, &warm);

		if (pfn == NIL)
			break;
		tc_add(a, t, pfn, order, !warm, false);
	}
	zlock_unlock(&a->lock);
}

/* Give blocks back to the buddy lists until @t holds at most @target pages.
 * The arena lock held, and @t is the caller's (active) or quiesced.
 * @owner: the owner drains its own cache as it overflows; the blocks it
 * freed there (not PG_cold) go back warm, as the last of some 4 MiB it has
 * been freeing (the same guess as clear.c's hot blocks).  A quiescer's
 * drain (before ENOMEM, at thread exit, in a forked child) knows nothing
 * of when they were written: no stamp. */
static void tc_drain(struct zp_arena *a, struct tcache *t, size_t target, bool owner)
{
	lock_assert_held(&a->lock);
	while (t->pages > target) {
		size_t best_pages = 0;
		unsigned order = 0;
		int st = 0;
		uint32_t pfn;
		bool warm;

		for (unsigned o = 0; o <= TC_MAX_ORDER; o++) {
			for (int s = 0; s < NR_ZSTATES; s++) {
				size_t pages = t->lists[o][s].nr << o;

				if (pages > best_pages) {
					best_pages = pages;
					order = o;
					st = s;
				}
			}
		}
		pfn = t->lists[order][st].tail; /* the coldest */
		warm = owner && !(pg_info(&a->pages[pfn]) & PG_COLD);
		tc_del(a, t, pfn, order, (enum zstate)st);
		free_one_page(a, pfn, order, warm ? STAMP_NOW : 0);
	}
}

/* The block, or NIL: nothing cached and nothing to refill from (the caller
 * then takes the slow path); @hot: this thread freed it here, or a zeroing
 * refill found it warm (not PG_COLD); without a cache, a warm block. */
uint32_t rmqueue_tcache(struct zp_arena *a, unsigned order, bool want_zero, bool *hot)
{
	struct tcache *t = tc_get(a);
	uint32_t pfn = NIL;
	bool entered;

	lock_assert_not_held(&a->lock);
	if (unlikely(!t)) {
		zlock_lock(&a->lock);
		pfn = rmqueue_smallest(a, order, want_zero, ALL_STATES, NULL, hot);
		zlock_unlock(&a->lock);
		return pfn;
	}
	entered = tc_enter(t);
	for (int r = 0; r < NR_ZSTATES; r++) {
		enum zstate st = state_of_rank(r, want_zero);
		struct free_list *l = &t->lists[order][st];

		if (unlikely(!l->nr) && buddy_may_have(a, order, st))
			tc_refill(a, t, order, st, want_zero);
		if (likely(l->nr)) {
			pfn = l->head;
			*hot = !(pg_info(&a->pages[pfn]) & PG_COLD);
			tc_del_head(a, t, l, pfn, order, PG_BUSY);
			break;
		}
	}
	tc_exit(t, entered);
	return pfn;
}

void free_tcache(struct zp_arena *a, uint32_t pfn, unsigned order, bool all_dirty)
{
	struct tcache *t = tc_get(a);
	bool entered;

	lock_assert_not_held(&a->lock);
	if (unlikely(!t)) {
		zlock_lock(&a->lock);
		free_one_page(a, pfn, order, STAMP_NOW);
		zlock_unlock(&a->lock);
		return;
	}
	entered = tc_enter(t);
	tc_add(a, t, pfn, order, false, all_dirty);
	if (unlikely(t->pages > TC_HIGH_PAGES))
		tc_drain_high(a, t);
	tc_exit(t, entered);
}

void tc_drain_high(struct zp_arena *a, struct tcache *t)
{
	zlock_lock(&a->lock);
	tc_drain(a, t, TC_HIGH_PAGES - TC_BATCH_PAGES, true);
	zlock_unlock(&a->lock);
}

int tc_drain_high_leave(struct zp_arena *a, struct tcache *t)
{
	tc_drain_high(a, t);
	tc_leave(t);
	return 0;
}

/* ---- the bias ---- */

/* The owner, active and unbiased, after bias_period compare-and-swap frees
 * of its own blocks: from now on it frees them with a plain load and store.
 * The fence orders the odd mode before any of those loads, so a claim that
 * read the even mode after its compare-and-swap is seen by them. */
void tc_rebias(struct zp_arena *a, struct tcache *t)
{
	unsigned slot = t->tag >> PG_TAG_SHIFT;

	t->bias_count = 0;
	atomic_fetch_add_explicit(&a->tc_mode[slot], 1, memory_order_seq_cst);
	atomic_thread_fence(memory_order_seq_cst);
	t->biased = true;
}

/* tc_lock held, @t (if any) stopped and inactive: the slot's mode even. */
static void tc_unbias(struct zp_arena *a, unsigned slot, struct tcache *t)
{
	uint32_t mode = atomic_load_explicit(&a->tc_mode[slot], memory_order_relaxed);

	lock_assert_held(&tc_lock);
	if (!(mode & 1))
		return;
	atomic_store_explicit(&a->tc_mode[slot], mode + 1, memory_order_release);
	if (t) {
		t->biased = false;
		t->bias_count = 0;
		t->bias_period = t->bias_period >= tc_bias_max / 4 ? tc_bias_max : t->bias_period * 4;
	}
}

/* @t leaves its arena (tc_detach()): its slot is free, its mode even. */
static void tc_slot_release(struct zp_arena *a, struct tcache *t)
{
	unsigned slot = t->tag >> PG_TAG_SHIFT;

	if (!slot)
		return;
	tc_unbias(a, slot, t);
	a->tc_slot[slot] = NULL;
}

/* ---- quiescing: every other thread's side ---- */

/* Fold @t's counters into the arena's, unlink it from @a.  tc_lock and the
 * arena lock held; @t inactive and emptied. */
static void tc_detach(struct zp_arena *a, struct tcache *t)
{
	lock_assert_held(&tc_lock);
	stat_add(&a->tc_gone.cleared, atomic_load_explicit(&t->stats.cleared, memory_order_relaxed));
	stat_add(&a->tc_gone.skipped, atomic_load_explicit(&t->stats.skipped, memory_order_relaxed));
	stat_add(&a->tc_gone.refaulted, atomic_load_explicit(&t->stats.refaulted, memory_order_relaxed));
	tc_slot_release(a, t);
	if (t->prev)
		t->prev->next = t->next;
	else
		a->tcaches = t->next;
	if (t->next)
		t->next->prev = t->prev;
	t->next = t->prev = NULL;
}

/* Take tc_lock to quiesce, after any owner waiting for it (tc_enter()): an
 * owner makes progress even against back-to-back quiescers. */
static void tc_lock_quiescer(void)
{
	unsigned n = 0;

	while (atomic_load_explicit(&tc_waiters, memory_order_acquire))
		os_backoff(&n);
	zlock_lock(&tc_lock);
}

void tc_lock_global(void)
{
	tc_lock_quiescer();
}

void tc_unlock_global(void)
{
	zlock_unlock(&tc_lock);
}

/* Ask every cache of @a to stay off its lists.  tc_lock held. */
void tc_stop(struct zp_arena *a)
{
	lock_assert_held(&tc_lock);
	for (struct tcache *t = a->tcaches; t; t = t->next)
		atomic_store_explicit(&t->stop, 1, memory_order_seq_cst);
}

/* After tc_stop() of every arena concerned: make the stores seen. */
void tc_barrier(void)
{
	lock_assert_held(&tc_lock);
	if (TC_ASYM_OK && tc_asym) {
		int err = os_membarrier();

		if (err) { /* cannot happen once registered: nothing else is safe */
			fprintf(stderr, "zpage: membarrier failed (%d) after registration\n", err);
			abort();
		}
	} else {
		atomic_thread_fence(memory_order_seq_cst);
	}
}

/* Wait until @t's owner is off its lists (it saw stop, or left). */
static void tc_wait_cache(struct tcache *t)
{
	unsigned n = 0;

	while (atomic_load_explicit(&t->active, memory_order_seq_cst))
		os_backoff(&n);
}

/* Wait until every cache of @a is off its lists.  tc_lock held. */
void tc_wait(struct zp_arena *a)
{
	lock_assert_held(&tc_lock);
	for (struct tcache *t = a->tcaches; t; t = t->next)
		tc_wait_cache(t);
}

/* Let the owners back on their lists.  tc_lock held. */
void tc_resume(struct zp_arena *a)
{
	lock_assert_held(&tc_lock);
	for (struct tcache *t = a->tcaches; t; t = t->next)
		atomic_store_explicit(&t->stop, 0, memory_order_release);
}

/* ---- claims of blocks another thread's cache tagged (the bias) ---- */

/*
 * The slow side of a claim of a block tagged @slot: under tc_lock, the
 * slot's cache stopped and inactive, so no plain free of it runs.  With
 * @claimed, this thread's compare-and-swap already put @busy in the head
 * (a ticket no other claim writes), and the claim stands if the head still
 * reads it; otherwise the compare-and-swap is made now.  The cache is
 * unbiased either way: other threads free its blocks.
 */
static bool tc_claim_stopped(struct zp_arena *a, uint32_t pfn, unsigned slot, uint32_t info, uint32_t busy,
			     bool claimed)
{
	struct tcache *t;
	bool won;

	tc_lock_quiescer();
	t = a->tc_slot[slot];
	if (t) {
		atomic_store_explicit(&t->stop, 1, memory_order_seq_cst);
		tc_barrier();
		tc_wait_cache(t);
	}
	if (claimed)
		won = pg_info(&a->pages[pfn]) == busy;
	else
		won = atomic_compare_exchange_strong_explicit(&a->pages[pfn].info, &info, busy, memory_order_acq_rel,
							      memory_order_acquire);
	tc_unbias(a, slot, t);
	atomic_fetch_add_explicit(&tc_bias_settled, 1, memory_order_relaxed);
	if (t)
		atomic_store_explicit(&t->stop, 0, memory_order_release);
	zlock_unlock(&tc_lock);
	return won;
}

/* A ticket of the pool for one claim (above the slots), or 0 if all are
 * held. */
static uint32_t tc_ticket_take(void)
{
	for (unsigned w = 0; w < TC_TICKETS / 64; w++) {
		uint64_t v = atomic_load_explicit(&tc_tickets[w], memory_order_relaxed);

		while (~v) {
			unsigned b = (unsigned)__builtin_ctzll(~v);

			if (atomic_compare_exchange_weak_explicit(&tc_tickets[w], &v, v | (1ull << b),
								  memory_order_acquire, memory_order_relaxed))
				return TC_SLOTS + w * 64 + b;
		}
	}
	return 0;
}

static void tc_ticket_give(uint32_t ticket)
{
	ticket -= TC_SLOTS;
	atomic_fetch_and_explicit(&tc_tickets[ticket / 64], ~(1ull << (ticket % 64)), memory_order_release);
}

/*
 * A claim of a block that another thread's cache tagged.  While the
 * cache's mode reads the same even epoch before and after this thread's
 * compare-and-swap, its owner has no plain free of the block in flight
 * (an unbias waits for the owner's section to end, a rebias fences before
 * its first plain load), so the claim stands.  Otherwise, or when the mode
 * is odd, or no ticket is free (the claimer's slot, else one of the
 * pool's), the claim is settled with the cache stopped (tc_claim_stopped()).
 */
bool tc_claim_tagged(struct zp_arena *a, uint32_t pfn, uint32_t info, uint32_t busy)
{
	unsigned slot = info >> PG_TAG_SHIFT;
	struct tcache *me;
	uint32_t mode, ticket, mine;
	bool won;

	if (slot >= TC_SLOTS) /* not a tag this library wrote */
		return false;
	me = tc_get(a);
	if (me && me->tag == (info & PG_TAG_MASK)) /* its own, not the cache it used last */
		return atomic_compare_exchange_strong_explicit(&a->pages[pfn].info, &info, busy, memory_order_acq_rel,
							       memory_order_acquire);
	mode = atomic_load_explicit(&a->tc_mode[slot], memory_order_acquire);
	if (mode & 1)
		return tc_claim_stopped(a, pfn, slot, info, busy, false);
	/* its slot for a ticket, or one of the pool's for this claim (a
	 * thread without a cache, or whose cache came too late for a slot) */
	mine = me ? me->tag >> PG_TAG_SHIFT : 0;
	if (!mine && !(mine = tc_ticket_take()))
		return tc_claim_stopped(a, pfn, slot, info, busy, false);
	ticket = busy | (mine << PG_TAG_SHIFT);
	if (!atomic_compare_exchange_strong_explicit(&a->pages[pfn].info, &info, ticket, memory_order_seq_cst,
						     memory_order_acquire))
		won = false;
	else if (atomic_load_explicit(&a->tc_mode[slot], memory_order_seq_cst) == mode)
		won = true;
	else
		won = tc_claim_stopped(a, pfn, slot, info, ticket, true);
	if (mine >= TC_SLOTS)
		tc_ticket_give(mine);
	return won;
}

void lock_all(struct zp_arena *a)
{
	lock_assert_not_held(&a->lock);
	tc_lock_quiescer();
	tc_stop(a);
	tc_barrier();
	tc_wait(a);
	zlock_lock(&a->lock);
}

void unlock_all(struct zp_arena *a)
{
	zlock_unlock(&a->lock);
	tc_resume(a);
	zlock_unlock(&tc_lock);
}

void drain_all_pages_locked(struct zp_arena *a)
{
	lock_assert_all_held(a);
	for (struct tcache *t = a->tcaches; t; t = t->next)
		tc_drain(a, t, 0, false);
}

void drain_all_pages(struct zp_arena *a)
{
	lock_all(a);
	drain_all_pages_locked(a);
	unlock_all(a);
}

/* Every lock held: the arena's caches are quiet. */
void tc_sum(struct zp_arena *a, struct tc_totals *s)
{
	lock_assert_all_held(a);
	*s = (struct tc_totals){
		.cleared = atomic_load(&a->tc_gone.cleared),
		.skipped = atomic_load(&a->tc_gone.skipped),
		.refaulted = atomic_load(&a->tc_gone.refaulted),
	};
	for (struct tcache *t = a->tcaches; t; t = t->next) {
		for (unsigned o = 0; o <= TC_MAX_ORDER; o++) {
			for (int st = 0; st < NR_ZSTATES; st++) {
				const struct free_list *l = &t->lists[o][st];

				for (uint32_t pfn = l->head; pfn != NIL; pfn = a->pages[pfn].next) {
					struct zcount c;

					zs_count(a, pfn, (size_t)1 << o, &c);
					zcount_add(&s->cnt, &c);
				}
				s->blocks[o][st] += l->nr;
			}
		}
		s->cleared += atomic_load_explicit(&t->stats.cleared, memory_order_relaxed);
		s->skipped += atomic_load_explicit(&t->stats.skipped, memory_order_relaxed);
		s->refaulted += atomic_load_explicit(&t->stats.refaulted, memory_order_relaxed);
		s->nr_caches++;
	}
}

/* Destroy: the caches' blocks go with the arena; their owners find them
 * detached and free them. */
void tc_destroy(struct zp_arena *a)
{
	zlock_lock(&tc_lock);
	while (a->tcaches) {
		struct tcache *t = a->tcaches;

		a->tcaches = t->next;
		t->next = t->prev = NULL;
		atomic_store_explicit(&t->arena, NULL, memory_order_release); /* last touch */
	}
	zlock_unlock(&tc_lock);
}

/* pthread key destructor: this thread's caches go back to their arenas,
 * with signals blocked (a handler would find its cache unmapped, or wait
 * for the locks held here) and the thread marked exited first (a handler
 * after it, or another key's destructor, then gets no cache: the buddy
 * lists). */
static void tc_thread_exit(void *arg)
{
	struct tc_thread *me = arg;
	sigset_t old;

	os_block_signals(&old);
	me->last = NULL;
	me->last_id = 0;
	me->exited = true;
	while (me->caches) {
		struct tcache *t = me->caches;
		struct zp_arena *a;

		me->caches = t->thread_next;
		zlock_lock(&tc_lock);
		a = atomic_load_explicit(&t->arena, memory_order_relaxed);
		if (a) {
			zlock_lock(&a->lock);
			tc_drain(a, t, 0, false);
			tc_detach(a, t);
			zlock_unlock(&a->lock);
		}
		zlock_unlock(&tc_lock);
		tc_cache_free(t);
	}
	os_restore_signals(&old);
}

/* Forked child, every lock held: the other threads are gone, so are their
 * caches' owners.  Their blocks go back to the buddy lists. */
void tc_fork_child(struct zp_arena *a)
{
	struct tcache *t = a->tcaches, *next;

	lock_assert_all_held(a);
	for (; t; t = next) {
		next = t->next;
		if (t->owner == &tc_self)
			continue;
		atomic_store_explicit(&t->active, 0, memory_order_relaxed);
		tc_drain(a, t, 0, false);
		tc_detach(a, t);
		tc_cache_free(t);
	}
}

/* Forked child, once, before tc_fork_child(): membarrier registration is the
 * parent's, make sure of it here (one thread runs, none is on its lists);
 * nobody waits for tc_lock. */
void tc_fork_child_global(void)
{
	/* the owners that waited for tc_lock at the fork are the parent's, and
	 * so are the claims that held tickets */
	atomic_store_explicit(&tc_waiters, 0, memory_order_relaxed);
	for (unsigned w = 0; w < TC_TICKETS / 64; w++)
		atomic_store_explicit(&tc_tickets[w], 0, memory_order_relaxed);
	if (tc_asym && !os_membarrier_register())
		tc_asym = false;
}

void zp_test_tc_bias(unsigned first, unsigned max)
{
	tc_bias_first = first ? first : TC_BIAS_FIRST;
	tc_bias_max = max ? max : TC_BIAS_MAX;
}

bool zp_test_tc_biased(struct zp_arena *a)
{
	struct tcache *t = tc_mine(a);

	return t && t->biased;
}

unsigned long zp_test_tc_bias_settled(void)
{
	return atomic_load_explicit(&tc_bias_settled, memory_order_relaxed);
}

unsigned zp_test_tc_thread_caches(void)
{
	unsigned n = 0;

	for (const struct tcache *t = tc_self.caches; t; t = t->thread_next)
		n++;
	return n;
}

void zp_test_tc_force_fences(void)
{
	tc_no_membarrier = true;
}

const char *zp_test_tc_handshake(void)
{
	pthread_once(&tc_once, tc_global_init);
	return tc_asym ? "membarrier" : "fences";
}

void zp_test_set_pcp(struct zp_arena *a, bool on)
{
	a->tc_orders = on ? tc_nr_orders(a) : 0;
	gates_update(a);
}

void zp_test_drain_pcp(struct zp_arena *a)
{
	drain_all_pages(a);
}
