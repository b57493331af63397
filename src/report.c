/* SPDX-License-Identifier: MIT */
/*
 * report.c - returning free memory to the OS ("page reporting"), pre-zeroing
 * and the background thread that runs both.
 *
 * Backend: a small hooks struct (os.h) between policy and the OS.
 *   default   madvise(MADV_DONTNEED) on private anonymous memory: reads back
 *             as zero.  Trusted only if a self-test (once per process) sees a
 *             written page read zero after it (emulators may not zero-fill).
 *   MADV_FREE (ZP_REPORT_MADV_FREE) the kernel may keep the old contents:
 *             reported pages keep their zero bits (a zero page stays zero
 *             either way) and a dirty one stays dirty.
 *
 * Both passes follow one pattern, like Linux's page_reporting:
 *   1. under the arena lock, take a batch of candidate blocks off the free
 *      lists onto a->isolated; their heads become PG_busy, so no allocation
 *      can take them and no free can merge with them;
 *   2. drop the lock; make the system calls / clear the pages, marking each
 *      page's new state once it is true (a page's bits never claim more
 *      than its contents, so a fork at any point leaves a truthful child);
 *   3. retake the lock; put each block back with free_one_page(), which
 *      merges and relists it, count the work, wake allocations waiting for
 *      isolated memory (putback_cond).
 * Allocation and free go on during step 2.  An allocation that finds no
 * free block while a pass holds some waits for the pass (page_alloc.c).
 * A forked child puts back what its parent's passes held
 * (report_fork_child()).
 *
 * Report candidates: blocks of report_order or larger on the zeroed or
 * dirty lists (a block on the reported list has every page reported).  A
 * block whose system call fails (e.g. a page of it is mlocked) goes back
 * unchanged, or with the runs before the failed one reported when it was
 * handed back run by run (keep_zeroed), and the pass goes on without it.
 * The OS may have dropped part of a failed range: its bits still hold,
 * since a page not marked zeroed may read anything.
 * Pre-zero candidates: blocks on the dirty lists with resident dirty pages;
 * a block larger than the pass still needs is split (expand()) so that a
 * pass clears about what it was asked, not a whole large block.  Only
 * resident dirty pages are cleared, with non-temporal stores (nobody reads
 * them soon): a page given back to the OS is never written, even when it
 * is not known zero (MADV_FREE), since writing it would take it back.
 *
 * Background thread (ZP_REPORT, ZP_PREZERO), sleeping on a condition
 * variable under the arena lock when there is nothing to do:
 *   - a free that leaves a block of report_order or larger with unreported
 *     pages sets report_pending and wakes it; it schedules a pass at
 *     now + report_delay_ms and sleeps until then (like Linux, the delay
 *     runs from the first free after a pass, not per block);
 *   - with ZP_PREZERO, an allocation or free that leaves less than
 *     prezero_bytes of zeroed resident memory on the lists while resident
 *     dirty free memory exists wakes it; it clears in bursts of at most
 *     PREZERO_CHUNK and after each burst pauses as long as the burst may
 *     take at prezero_rate bytes per second (prezero_resume_ms).
 * It never polls: with nothing to do it waits on the condition variable
 * (daemon_sleeps counts those waits, for the tests), with a deadline on
 * the backend's clock when a report pass or the end of a pause is due.
 * Every wait is on the condition variable, so zp_arena_destroy() wakes it
 * at once; a pass in flight checks daemon_stop between blocks, so destroy
 * returns within one system call or one block's clear.
 *
 * Reporting and pre-zeroing do not undo each other: reporting leaves
 * prezero_bytes of zeroed resident memory unreported, even inside a block
 * it reports (keep_zeroed: only the block's resident dirty runs go back),
 * and pre-zeroing never writes a reported page.  Putting blocks back never
 * schedules a report pass, so a block whose system call keeps failing does
 * not bring the thread back again and again.
 *
 * Invariants (zp_arena_check()): a->isolated lists exactly the blocks a pass
 * holds, each head PG_busy with its order, and isolated_pages is their sum.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define BATCH	       64
#define PREZERO_CHUNK  ((size_t)4 << 20)
#define MAX_FAILED     64
#define NO_DEADLINE    UINT64_MAX

int report_init(struct zp_arena *a, bool madv_free)
{
	int err;

	a->backend = madv_free ? os_backend_free : os_backend_dontneed;
	a->report_zeroes = a->backend.zeroes && os_discard_zero_fills();
	list_init(&a->isolated);
	err = os_cond_init(&a->daemon_cond);
	if (err)
		return err;
	err = os_cond_init(&a->putback_cond);
	if (err)
		pthread_cond_destroy(&a->daemon_cond);
	return err;
}

void report_destroy(struct zp_arena *a)
{
	pthread_cond_destroy(&a->putback_cond);
	pthread_cond_destroy(&a->daemon_cond);
}

void zp_test_set_backend(struct zp_arena *a, const struct zp_backend *b)
{
	zlock_lock(&a->lock);
	a->backend = *b;
	a->report_zeroes = b->zeroes;
	zlock_unlock(&a->lock);
}

/* ---- isolate / work unlocked / put back ---- */

struct isolated {
	uint32_t pfn;
	unsigned order;
	bool keep_zeroed; /* report: its zeroed pages are part of the pre-zero
			     reserve; hand back only its resident dirty runs */
};

/* Lock held.  Take the listed block at @pfn off its list onto a->isolated. */
static struct isolated isolate_block(struct zp_arena *a, uint32_t pfn, unsigned order)
{
	lock_assert_held(&a->lock);

	pg_set_info(&a->pages[pfn], mk_info(PG_BUSY, order, 0));
	list_add(a, &a->isolated, pfn, false);
	a->isolated_pages += (size_t)1 << order;
	return (struct isolated){pfn, order, false};
}

static bool in(const uint32_t *set, size_t n, uint32_t pfn)
{
	for (size_t i = 0; i < n; i++)
		if (set[i] == pfn)
			return true;
	return false;
}

/*
 * Lock held.  Take up to @max report candidates, largest first: blocks of
 * report_order or larger with a page not yet reported (a block reported
 * through a backend that does not zero stays dirty, and must not be
 * reported again and again), except the @nskip blocks in @skip (their
 * system call failed this pass).  Reporting keeps prezero_bytes of zeroed
 * resident memory: a block whose zeroed pages the reserve needs is either
 * skipped (nothing else to report in it) or isolated with keep_zeroed, and
 * only its resident dirty runs are handed back.
 */
static size_t isolate_for_report(struct zp_arena *a, struct isolated *out, size_t max, const uint32_t *skip,
				 size_t nskip)
{
	size_t reserve = a->prezero_bytes >> ZP_PAGE_SHIFT;
	size_t kept = 0; /* zeroed pages isolated with keep_zeroed: still the reserve's */

	/* with a quiet period (the drop-in's): an arena idle for a whole
	 * report delay gives its reserve back too; an idle program keeps
	 * nothing it does not use */
	if (a->prezero_quiet_ms && a->backend.now_ms(a->backend.ctx) - a->last_activity_ms >= a->report_delay_ms)
		reserve = 0;
	size_t n = 0;

	lock_assert_held(&a->lock);
	for (unsigned o = a->max_order + 1; o-- > a->report_order && n < max;) {
		for (int s = ZS_ZEROED; s <= ZS_DIRTY && n < max; s++) {
			uint32_t pfn, next;

			for (pfn = a->free[o][s].head; pfn != NIL && n < max; pfn = next) {
				struct zcount c;
				bool keep;

				next = a->pages[pfn].next;
				block_count(a, pfn, o, &c);
				if (c.reported == c.pages || in(skip, nskip, pfn))
					continue;
				keep = c.zeroed && a->cnt.zeroed + kept < c.zeroed + reserve;
				if (keep && c.dirty == c.lazy)
					continue; /* only reserve pages to report */
				del_from_free_list(a, pfn, o, (enum zstate)s, NULL);
				out[n] = isolate_block(a, pfn, o);
				out[n++].keep_zeroed = keep;
				if (keep)
					kept += c.zeroed;
			}
		}
	}
	return n;
}

/* Hand back the resident dirty runs of an isolated block (keep_zeroed).
 * Returns the pages reported; *@err: 0, or -errno of the call that failed,
 * after which the block's later runs are left (the runs before it stay
 * reported: their bits say so). */
static long report_dirty_runs(struct zp_arena *a, const struct isolated *b, int *err)
{
	size_t end = b->pfn + ((size_t)1 << b->order);
	long done = 0;

	*err = 0;
	for (size_t p = b->pfn; p < end;) {
		size_t s = zs_next_clearable(a, p, end, true), e;

		if (s == end)
			break;
		e = zs_next_clearable(a, s, end, false);
		*err = a->backend.report(a->backend.ctx, pfn_to_addr(a, s), (e - s) << ZP_PAGE_SHIFT);
		if (*err)
			break;
		zs_mark_reported(a, s, e - s, a->report_zeroes);
		done += (long)(e - s);
		p = e;
	}
	return done;
}

/* Lock held.  The first block of @order on the dirty list with a resident
 * dirty page, or NIL. */
static uint32_t find_clearable(struct zp_arena *a, unsigned order)
{
	lock_assert_held(&a->lock);

	for (uint32_t pfn = a->free[order][ZS_DIRTY].head; pfn != NIL; pfn = a->pages[pfn].next) {
		struct zcount c;

		block_count(a, pfn, order, &c);
		if (c.dirty > c.lazy)
			return pfn;
	}
	return NIL;
}

/*
 * Lock held.  Isolate one block with resident dirty pages for the pre-zero
 * pass, of at most 2^@want pages: the smallest such block of order @want or
 * larger, split down to @want; else the largest smaller one.
 */
static size_t isolate_for_prezero(struct zp_arena *a, unsigned want, struct isolated *out)
{
	uint32_t pfn = NIL;
	struct zcount c;
	unsigned o;
	uint16_t stamp;

	lock_assert_held(&a->lock);
	for (o = want; o <= a->max_order && pfn == NIL; o++)
		pfn = find_clearable(a, o);
	if (pfn != NIL) {
		o--;
	} else {
		for (o = want; o-- > 0 && pfn == NIL;)
			pfn = find_clearable(a, o);
		if (pfn == NIL)
			return 0;
		o++;
	}
	stamp = pg_stamp(pg_info(&a->pages[pfn]));
	del_from_free_list(a, pfn, o, ZS_DIRTY, &c);
	if (o > want) {
		pfn = expand(a, pfn, o, want, KEEP_CLEARABLE, &c, stamp);
		o = want;
	}
	*out = isolate_block(a, pfn, o);
	return 1;
}

/*
 * Lock held.  Put the blocks back on the free lists (merging) and wake
 * allocations waiting for isolated memory.  Putting back does not schedule
 * a report pass (a block whose system call failed would otherwise bring
 * the thread back every report_delay_ms, for ever): frees do.
 */
static void put_back(struct zp_arena *a, const struct isolated *b, size_t n)
{
	bool pending = a->report_pending;

	lock_assert_held(&a->lock);

	a->in_putback = true; /* not the program's activity (prezero_defer()) */
	for (size_t i = 0; i < n; i++) {
		list_del(a, &a->isolated, b[i].pfn);
		a->isolated_pages -= (size_t)1 << b[i].order;
		free_one_page(a, b[i].pfn, b[i].order, 0); /* cleared non-temporally or given to the OS */
	}
	a->in_putback = false;
	a->report_pending = pending;
	if (n)
		pthread_cond_broadcast(&a->putback_cond);
}

/* Lock held.  Not a cancellation point: a thread cancelled here would
 * leave holding the arena lock (pthread_cond_wait() retakes it). */
void wait_for_isolated(struct zp_arena *a)
{
	int old;

	lock_assert_held(&a->lock);
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
	zlock_cond_wait(&a->lock, &a->putback_cond);
	pthread_setcancelstate(old, NULL);
}

static bool stopping(struct zp_arena *a)
{
	return atomic_load_explicit(&a->daemon_stop, memory_order_relaxed);
}

long zp_arena_report(struct zp_arena *a)
{
	struct isolated b[BATCH];
	uint32_t failed[MAX_FAILED];
	size_t nfailed = 0;
	long reported = 0;
	int err = 0;

	if (!a)
		return -EINVAL;
	daemon_ensure(a);
	while (!stopping(a) && nfailed < MAX_FAILED) {
		long batch_reported = 0;
		size_t n;

		zlock_lock(&a->lock);
		n = isolate_for_report(a, b, BATCH, failed, nfailed);
		zlock_unlock(&a->lock);
		if (!n)
			break;
		for (size_t i = 0; i < n && !stopping(a); i++) {
			size_t pages = (size_t)1 << b[i].order;
			struct zcount c;
			int rc;

			if (b[i].keep_zeroed) {
				batch_reported += report_dirty_runs(a, &b[i], &rc);
			} else {
				rc = a->backend.report(a->backend.ctx, pfn_to_addr(a, b[i].pfn),
						       pages << ZP_PAGE_SHIFT);
				if (!rc) {
					zs_count(a, b[i].pfn, pages, &c);
					zs_mark_reported(a, b[i].pfn, pages, a->report_zeroes);
					batch_reported += (long)(pages - c.reported);
				}
			}
			/* a failed block (even one with some runs reported) is
			 * skipped for the rest of the pass */
			if (rc) {
				if (!err)
					err = rc;
				if (nfailed < MAX_FAILED)
					failed[nfailed++] = b[i].pfn;
			}
		}
		zlock_lock(&a->lock);
		put_back(a, b, n);
		stat_add(&a->pages_reported, (uint64_t)batch_reported); /* with the pages: stats stay exact */
		zlock_unlock(&a->lock);
		reported += batch_reported;
	}
	return reported ? reported : err;
}

/* Zeroed resident free pages on the buddy lists now: what the ZP_PREZERO
 * thread counts too (prezero_wanted()); the threads' caches, which
 * pre-zeroing never reaches, are not counted. */
static size_t zeroed_resident(struct zp_arena *a)
{
	size_t z;

	zlock_lock(&a->lock);
	z = a->cnt.zeroed;
	zlock_unlock(&a->lock);
	return z;
}

/* Largest order whose block is at most @pages pages (@pages >= 1). */
static unsigned order_within(struct zp_arena *a, size_t pages)
{
	unsigned o = (unsigned)(63 - __builtin_clzll((unsigned long long)pages));

	return o < a->max_order ? o : a->max_order;
}

long zp_arena_prezero(struct zp_arena *a, size_t max_bytes)
{
	size_t goal_pages, done = 0;

	if (!a)
		return -EINVAL;
	daemon_ensure(a);
	if (max_bytes) {
		goal_pages = (max_bytes >> ZP_PAGE_SHIFT) + !!(max_bytes & (ZP_PAGE_SIZE - 1));
	} else {
		size_t have = zeroed_resident(a), want = a->prezero_bytes >> ZP_PAGE_SHIFT;

		goal_pages = want > have ? want - have : 0;
	}
	/* one block at a time, no larger than what is left to do */
	while (done < goal_pages && !stopping(a)) {
		struct isolated b;
		size_t n, cleared;

		zlock_lock(&a->lock);
		n = isolate_for_prezero(a, order_within(a, goal_pages - done), &b);
		zlock_unlock(&a->lock);
		if (!n)
			break;
		cleared = clear_dirty_free_block(a, b.pfn, b.order);
		zlock_lock(&a->lock);
		put_back(a, &b, 1);
		stat_add(&a->pages_cleared, cleared); /* with the pages: stats stay exact */
		stat_add(&a->pages_prezeroed, cleared);
		zlock_unlock(&a->lock);
		done += cleared;
	}
	return (long)done;
}

/* ---- the background thread ---- */

/* Lock held: does the pre-zero thread have work (less zeroed memory than
 * wanted, and resident dirty memory to clear)? */
static bool prezero_wanted(struct zp_arena *a)
{
	lock_assert_held(&a->lock);

	return (a->flags & ZP_PREZERO) && a->cnt.zeroed < (a->prezero_bytes >> ZP_PAGE_SHIFT) &&
	       a->cnt.dirty > a->cnt.lazy;
}

/* Lock held.  Wake the thread if pre-zeroing has work and is not pausing
 * for its rate cap (it wakes itself at the end of the pause). */
static void prezero_kick(struct zp_arena *a)
{
	lock_assert_held(&a->lock);
	if (a->daemon_running && !a->prezero_resume_ms && prezero_wanted(a))
		pthread_cond_signal(&a->daemon_cond);
}

/*
 * Lock held.  With a quiet period, activity on the buddy lists puts off
 * pre-zeroing until prezero_quiet_ms after the last of it: a block a
 * program frees and takes again at once is better cleared by that
 * allocation, hot in cache, than behind it with non-temporal stores, cold.
 * The first deferral after a quiet spell wakes the thread once, to arm its
 * timer; later ones only move the time (it wakes, finds it moved, sleeps on).
 */
static void prezero_defer(struct zp_arena *a)
{
	uint64_t until;

	lock_assert_held(&a->lock);
	if (!a->prezero_quiet_ms || !(a->flags & ZP_PREZERO) || !a->daemon_running || a->in_putback)
		return;
	a->last_activity_ms = a->backend.now_ms(a->backend.ctx);
	until = a->last_activity_ms + a->prezero_quiet_ms;
	if (until > a->prezero_resume_ms) {
		bool was_idle = !a->prezero_resume_ms;

		a->prezero_resume_ms = until;
		if (was_idle)
			pthread_cond_signal(&a->daemon_cond);
	}
}

/* Lock held.  An allocation took a block off the buddy lists. */
void note_alloc_block(struct zp_arena *a)
{
	lock_assert_held(&a->lock);
	prezero_defer(a);
	prezero_kick(a);
}

/* Lock held.  A free left a block at @pfn of @order on the lists. */
void note_free_block(struct zp_arena *a, uint32_t pfn, unsigned order)
{
	lock_assert_held(&a->lock);

	if (!a->daemon_running)
		return;
	prezero_defer(a);
	prezero_kick(a);
	if (!(a->flags & ZP_REPORT) || order < a->report_order || a->report_pending)
		return;
	if (pg_state(pg_info(&a->pages[pfn])) == ZS_REPORTED)
		return;
	a->report_pending = true;
	pthread_cond_signal(&a->daemon_cond);
}

uint64_t zp_test_daemon_sleeps(struct zp_arena *a)
{
	uint64_t n;

	zlock_lock(&a->lock);
	n = a->daemon_sleeps;
	zlock_unlock(&a->lock);
	return n;
}

size_t zp_test_isolated_pages(struct zp_arena *a)
{
	size_t n;

	zlock_lock(&a->lock);
	n = a->isolated_pages;
	zlock_unlock(&a->lock);
	return n;
}

void zp_test_kick(struct zp_arena *a)
{
	zlock_lock(&a->lock);
	pthread_cond_signal(&a->daemon_cond);
	zlock_unlock(&a->lock);
}

/* Lock held.  Sleep until @deadline on the backend's clock (NO_DEADLINE:
 * until signalled). */
static void daemon_wait(struct zp_arena *a, uint64_t deadline)
{
	lock_assert_held(&a->lock);

	a->daemon_sleeps++;
	if (deadline == NO_DEADLINE || !a->backend.wait_until) {
		zlock_cond_wait(&a->lock, &a->daemon_cond);
	} else {
		zlock_cond_wait_fn(&a->lock, &a->daemon_cond, a->backend.wait_until, a->backend.ctx, deadline);
	}
}

/* How long a burst of @pages may take at the rate cap, in ms (rounded up). */
static uint64_t burst_pause_ms(struct zp_arena *a, size_t pages)
{
	return (((uint64_t)pages << ZP_PAGE_SHIFT) * 1000 + a->prezero_rate - 1) / a->prezero_rate;
}

static void *daemon_main(void *arg)
{
	struct zp_arena *a = arg;

	zlock_lock(&a->lock);
	while (!stopping(a)) {
		uint64_t now = a->backend.now_ms(a->backend.ctx);
		uint64_t deadline = NO_DEADLINE;

		if (a->report_pending && !a->report_due_ms)
			a->report_due_ms = now + a->report_delay_ms;
		if (a->report_due_ms && now >= a->report_due_ms) {
			a->report_pending = false;
			a->report_due_ms = 0;
			zlock_unlock(&a->lock);
			zp_arena_report(a);
			zlock_lock(&a->lock);
			/* a quiet period's reserve goes back once the arena has been
			 * idle a whole report delay: if this pass came sooner (it
			 * is timed from the first free), come back then */
			if (a->prezero_quiet_ms && a->cnt.zeroed && !a->report_pending &&
			    a->last_activity_ms + a->report_delay_ms > a->backend.now_ms(a->backend.ctx)) {
				a->report_pending = true;
				a->report_due_ms = a->last_activity_ms + a->report_delay_ms;
			}
			continue;
		}
		if (a->report_due_ms)
			deadline = a->report_due_ms;
		if (a->prezero_resume_ms && now >= a->prezero_resume_ms)
			a->prezero_resume_ms = 0;
		/* pre-zero while the buddy lists hold less zeroed resident memory
		 * than wanted and some resident free memory is dirty (the threads'
		 * caches are not counted: pre-zeroing never reaches them) */
		if (prezero_wanted(a) && !a->prezero_resume_ms) {
			size_t chunk = ((a->prezero_bytes >> ZP_PAGE_SHIFT) - a->cnt.zeroed) << ZP_PAGE_SHIFT;
			long done;

			if (chunk > PREZERO_CHUNK)
				chunk = PREZERO_CHUNK;
			zlock_unlock(&a->lock);
			done = zp_arena_prezero(a, chunk);
			zlock_lock(&a->lock);
			if (done > 0) {
				/* the rate cap, on every burst */
				a->prezero_resume_ms = a->backend.now_ms(a->backend.ctx) + burst_pause_ms(a, (size_t)done);
				continue;
			}
		}
		/* a pause always ends with a wake-up: until then prezero_kick()
		 * leaves the thread alone */
		if (a->prezero_resume_ms && a->prezero_resume_ms < deadline)
			deadline = a->prezero_resume_ms;
		if (stopping(a))
			break;
		/* nothing to do until a free, an allocation, the report time or
		 * the end of a pause */
		daemon_wait(a, deadline);
	}
	zlock_unlock(&a->lock);
	return NULL;
}

int daemon_start(struct zp_arena *a)
{
	int err;

	if (!(a->flags & (ZP_REPORT | ZP_PREZERO)))
		return 0;
	err = os_thread_start(&a->daemon, daemon_main, a);
	if (!err)
		a->daemon_running = true;
	return err;
}

void daemon_stop(struct zp_arena *a)
{
	if (!a->daemon_running)
		return;
	zlock_lock(&a->lock);
	atomic_store(&a->daemon_stop, true);
	pthread_cond_signal(&a->daemon_cond);
	zlock_unlock(&a->lock);
	pthread_join(a->daemon, NULL);
	a->daemon_running = false;
}

/*
 * In a forked child, at the first allocation, free or pass: start the
 * thread its parent had (the child has none).  One caller claims the
 * restart; the thread is created with no lock held (pthread_create()
 * allocates, and may map memory).  If it cannot start, the child goes on
 * without background work; explicit passes still work.
 */
void daemon_start_after_fork(struct zp_arena *a)
{
	pthread_t t;
	bool owed;

	/* the claim and the gates' reopening (the everyday paths again) as
	 * one step under the lock, which the checker holds: it never sees one
	 * without the other */
	zlock_lock(&a->lock);
	owed = atomic_exchange(&a->daemon_restart, false);
	if (owed)
		gates_update(a);
	zlock_unlock(&a->lock);
	if (!owed)
		return;
	if (os_thread_start(&t, daemon_main, a))
		return;
	zlock_lock(&a->lock);
	a->daemon = t;
	a->daemon_running = true;
	pthread_cond_signal(&a->daemon_cond); /* work the parent left */
	zlock_unlock(&a->lock);
}

/*
 * Every lock held, in a forked child: the parent's threads are gone.  Put
 * back the blocks their passes held (their pages' bits are truthful: a pass
 * marks a page only once its new state is true), forget the parent's
 * background thread (never join it), and arrange for a thread of the
 * child's own when it is needed.  The condition variables may have had
 * waiters that no longer exist: initialise them afresh.
 */
void report_fork_child(struct zp_arena *a)
{
	lock_assert_all_held(a);

	a->daemon_running = false;
	atomic_store(&a->daemon_stop, false);
	a->prezero_resume_ms = 0;
	a->fork_putback_pages = a->isolated_pages;
	while (a->isolated.head != NIL) {
		uint32_t pfn = a->isolated.head;
		struct isolated b = {pfn, pg_order(pg_info(&a->pages[pfn]))};

		list_del(a, &a->isolated, pfn);
		a->isolated_pages -= (size_t)1 << b.order;
		free_one_page(a, b.pfn, b.order, 0);
	}
	/* a pass may have been in flight (between batches, or about to start
	 * after clearing report_pending): owe the child one */
	if (a->flags & ZP_REPORT)
		a->report_pending = true;
	os_cond_init(&a->daemon_cond);
	os_cond_init(&a->putback_cond);
	atomic_store(&a->daemon_restart, (a->flags & (ZP_REPORT | ZP_PREZERO)) != 0);
	gates_update(a); /* closed while a restart is owed */
}
