/* SPDX-License-Identifier: MIT */
/*
 * report.c - returning free memory to the OS ("page reporting"), pre-zeroing
 * and the background thread that runs both.
 *
 * Backend: a small hooks struct (internal.h) between policy and the OS.
 *   default   madvise(MADV_DONTNEED) on private anonymous memory: reads back
 *             as zero.  Trusted only if a self-test at arena creation sees a
 *             written page read zero after it (emulators may not zero-fill).
 *   MADV_FREE (ZP_REPORT_MADV_FREE) the kernel may keep the old contents:
 *             reported pages stay dirty.
 *
 * Both passes follow one pattern, like Linux's page_reporting:
 *   1. under the arena lock, take a batch of candidate blocks off the free
 *      lists; their heads become PG_busy ("isolated"), so no allocation can
 *      take them and no free can merge with them;
 *   2. drop the lock; make the system calls / clear the pages;
 *   3. retake the lock; mark the pages (reported and/or zeroed) and put each
 *      block back with free_one_page(), which merges and relists it.
 * Allocation and free go on during step 2.
 *
 * Report candidates: blocks of report_order or larger on the zeroed or
 * dirty lists (a block on the reported list has every page reported).
 * Pre-zero candidates: blocks on the dirty lists, largest first; only their
 * dirty pages are cleared, with non-temporal stores (nobody reads them soon).
 *
 * Background thread (ZP_REPORT, ZP_PREZERO), sleeping on a condition
 * variable under the arena lock when there is nothing to do:
 *   - a free that leaves a block of report_order or larger with unreported
 *     pages sets report_pending and wakes it; it schedules a pass at
 *     now + report_delay_ms and sleeps until then (like Linux, the delay
 *     runs from the first free after a pass, not per block);
 *   - with ZP_PREZERO, an allocation or free that leaves less than
 *     prezero_bytes of zeroed resident memory on the lists while dirty free
 *     memory exists wakes it; it clears dirty free memory until the target
 *     is met, at most prezero_rate bytes per second.
 * It never polls: with nothing to do it waits on the condition variable
 * (daemon_sleeps counts those waits, for the tests).
 *
 * Reporting leaves prezero_bytes of zeroed resident memory unreported, so
 * the two threads do not undo each other's work.
 * zp_arena_destroy() stops it and joins it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "internal.h"

#define BATCH	      64
#define PREZERO_CHUNK ((size_t)4 << 20)

/* ---- backends ---- */

static int madv(void *addr, size_t len, int advice)
{
	return madvise(addr, len, advice) ? -errno : 0;
}

static int report_dontneed(void *ctx, void *addr, size_t len)
{
	(void)ctx;
	return madv(addr, len, MADV_DONTNEED);
}

static int report_free(void *ctx, void *addr, size_t len)
{
	(void)ctx;
	return madv(addr, len, MADV_FREE);
}

static uint64_t mono_ms(void *ctx)
{
	struct timespec ts;

	(void)ctx;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Does MADV_DONTNEED really zero-fill private anonymous memory here? */
static bool dontneed_zero_fills(void)
{
	static int verdict = -1; /* once per process */
	volatile char *p;
	bool ok;

	if (verdict >= 0)
		return verdict;
	p = mmap(NULL, ZP_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return false;
	memset((void *)p, 0x5a, ZP_PAGE_SIZE);
	ok = !madvise((void *)p, ZP_PAGE_SIZE, MADV_DONTNEED) && p[0] == 0 && p[ZP_PAGE_SIZE - 1] == 0;
	munmap((void *)p, ZP_PAGE_SIZE);
	verdict = ok;
	return ok;
}

int report_init(struct zp_arena *a, bool madv_free)
{
	if (madv_free)
		a->backend = (struct zp_backend){"madv_free", report_free, false, mono_ms, NULL};
	else
		a->backend = (struct zp_backend){"madv_dontneed", report_dontneed, true, mono_ms, NULL};
	a->report_zeroes = a->backend.zeroes && dontneed_zero_fills();
	return pthread_cond_init(&a->daemon_cond, NULL);
}

void zp_test_set_backend(struct zp_arena *a, const struct zp_backend *b)
{
	pthread_mutex_lock(&a->lock);
	a->backend = *b;
	a->report_zeroes = b->zeroes;
	pthread_mutex_unlock(&a->lock);
}

/* ---- isolate / work unlocked / put back ---- */

struct isolated {
	uint32_t pfn;
	unsigned order;
};

/*
 * Take up to @max blocks of order >= @min_order from the lists of @states
 * (a mask), largest first; lock held.  @unreported: only blocks with a page
 * not yet reported (a block reported through a backend that does not zero
 * is back on the dirty list, and must not be reported again and again).
 */
static size_t isolate(struct zp_arena *a, unsigned min_order, unsigned states, struct isolated *out, size_t max,
		      bool unreported)
{
	size_t n = 0;

	for (unsigned o = a->max_order + 1; o-- > min_order && n < max;) {
		for (int s = 0; s < NR_ZSTATES && n < max; s++) {
			uint32_t pfn, next;

			if (!(states & (1u << s)))
				continue;
			for (pfn = a->free[o][s].head; pfn != NIL && n < max; pfn = next) {
				next = a->pages[pfn].next;
				if (unreported) {
					struct zcount c;

					zs_count(a, pfn, (size_t)1 << o, &c);
					if (c.reported == c.pages)
						continue;
					/* keep prezero_bytes of zeroed resident memory */
					if (s == ZS_ZEROED &&
					    a->cnt.zeroed < c.zeroed + (a->prezero_bytes >> ZP_PAGE_SHIFT))
						continue;
				}
				del_from_free_list(a, pfn, o, (enum zstate)s);
				pg_set_info(&a->pages[pfn], mk_info(PG_BUSY, o, 0));
				a->isolated_pages += (size_t)1 << o;
				out[n++] = (struct isolated){pfn, o};
			}
		}
	}
	return n;
}

static void put_back(struct zp_arena *a, const struct isolated *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		a->isolated_pages -= (size_t)1 << b[i].order;
		free_one_page(a, b[i].pfn, b[i].order);
	}
}

long zp_arena_report(struct zp_arena *a)
{
	struct isolated b[BATCH];
	long reported = 0;
	int err = 0;

	if (!a)
		return -EINVAL;
	for (;;) {
		size_t n;

		pthread_mutex_lock(&a->lock);
		n = isolate(a, a->report_order, (1u << ZS_ZEROED) | (1u << ZS_DIRTY), b, BATCH, true);
		pthread_mutex_unlock(&a->lock);
		if (!n)
			break;
		for (size_t i = 0; i < n; i++) {
			size_t pages = (size_t)1 << b[i].order;
			struct zcount c;
			int rc = a->backend.report(a->backend.ctx, pfn_to_addr(a, b[i].pfn), pages << ZP_PAGE_SHIFT);

			if (rc) {
				if (!err)
					err = rc;
				continue;
			}
			zs_count(a, b[i].pfn, pages, &c);
			zs_mark_reported(a, b[i].pfn, pages, a->report_zeroes);
			reported += (long)(pages - c.reported);
		}
		pthread_mutex_lock(&a->lock);
		put_back(a, b, n);
		pthread_mutex_unlock(&a->lock);
		if (err)
			break; /* the failed blocks are back on their lists; do not spin on them */
	}
	stat_add(&a->pages_reported, (uint64_t)reported);
	return reported ? reported : err;
}

/* Zeroed resident free pages the arena has now (buddy lists and caches). */
static size_t zeroed_resident(struct zp_arena *a)
{
	struct zp_stats st;

	zp_arena_stats(a, &st);
	return st.nr_free_zeroed;
}

long zp_arena_prezero(struct zp_arena *a, size_t max_bytes)
{
	struct isolated b[1];
	size_t goal_pages, done = 0;

	if (!a)
		return -EINVAL;
	if (max_bytes) {
		goal_pages = (max_bytes + ZP_PAGE_SIZE - 1) >> ZP_PAGE_SHIFT;
	} else {
		size_t have = zeroed_resident(a), want = a->prezero_bytes >> ZP_PAGE_SHIFT;

		goal_pages = want > have ? want - have : 0;
	}
	while (done < goal_pages) {
		size_t n;

		/* one block at a time, so the pass stops as soon as the goal is met */
		pthread_mutex_lock(&a->lock);
		n = isolate(a, 0, 1u << ZS_DIRTY, b, 1, false);
		pthread_mutex_unlock(&a->lock);
		if (!n)
			break;
		done += clear_dirty_free_block(a, b[0].pfn, b[0].order);
		pthread_mutex_lock(&a->lock);
		put_back(a, b, 1);
		pthread_mutex_unlock(&a->lock);
	}
	stat_add(&a->pages_prezeroed, done);
	return (long)done;
}

/* ---- the background thread ---- */

/* Lock held: does the pre-zero thread have work (less zeroed memory than
 * wanted, and dirty memory to clear)? */
static bool prezero_wanted(struct zp_arena *a)
{
	return (a->flags & ZP_PREZERO) && a->cnt.zeroed < (a->prezero_bytes >> ZP_PAGE_SHIFT) &&
	       atomic_load_explicit(&a->nonempty[ZS_DIRTY], memory_order_relaxed);
}

/* Lock held.  An allocation took a block off the buddy lists: wake the
 * pre-zero thread if that left it work. */
void note_alloc_block(struct zp_arena *a)
{
	if (a->daemon_running && prezero_wanted(a))
		pthread_cond_signal(&a->daemon_cond);
}

/* Lock held.  A free left a block at @pfn of @order on the lists. */
void note_free_block(struct zp_arena *a, uint32_t pfn, unsigned order)
{
	if (!a->daemon_running)
		return;
	if (prezero_wanted(a))
		pthread_cond_signal(&a->daemon_cond);
	if (!(a->flags & ZP_REPORT) || order < a->report_order || a->report_pending)
		return;
	if (pg_state(pg_info(&a->pages[pfn])) == ZS_REPORTED)
		return;
	a->report_pending = true;
	pthread_cond_signal(&a->daemon_cond);
}

void zp_test_kick(struct zp_arena *a)
{
	pthread_mutex_lock(&a->lock);
	pthread_cond_signal(&a->daemon_cond);
	pthread_mutex_unlock(&a->lock);
}

static void sleep_ms(uint64_t ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

/* Wait on the condition variable for at most @ms (real time); lock held. */
static void wait_ms(struct zp_arena *a, uint64_t ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_cond_timedwait(&a->daemon_cond, &a->lock, &ts);
}

static void *daemon_main(void *arg)
{
	struct zp_arena *a = arg;

	pthread_mutex_lock(&a->lock);
	while (!a->daemon_stop) {
		uint64_t now = a->backend.now_ms(a->backend.ctx);

		if (a->report_pending && !a->report_due_ms)
			a->report_due_ms = now + a->report_delay_ms;
		if (a->report_due_ms && now >= a->report_due_ms) {
			a->report_pending = false;
			a->report_due_ms = 0;
			pthread_mutex_unlock(&a->lock);
			zp_arena_report(a);
			pthread_mutex_lock(&a->lock);
			continue;
		}
		/* pre-zero while the buddy lists hold less zeroed resident memory
		 * than wanted and some free memory is dirty (the per-CPU caches
		 * are small and not counted) */
		if (prezero_wanted(a)) {
			size_t chunk = ((a->prezero_bytes >> ZP_PAGE_SHIFT) - a->cnt.zeroed) << ZP_PAGE_SHIFT;
			long done;

			if (chunk > PREZERO_CHUNK)
				chunk = PREZERO_CHUNK;
			pthread_mutex_unlock(&a->lock);
			done = zp_arena_prezero(a, chunk);
			/* rate cap: sleep as long as those bytes may take at prezero_rate */
			if (done > 0)
				sleep_ms(((uint64_t)done << ZP_PAGE_SHIFT) * 1000 / a->prezero_rate);
			pthread_mutex_lock(&a->lock);
			if (done > 0)
				continue;
		}
		if (a->daemon_stop)
			break;
		/* nothing to do until a free, an allocation or the report time */
		a->daemon_sleeps++;
		if (a->report_due_ms)
			wait_ms(a, a->report_due_ms > now ? a->report_due_ms - now : 1);
		else
			pthread_cond_wait(&a->daemon_cond, &a->lock);
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

int daemon_start(struct zp_arena *a)
{
	int err;

	if (!(a->flags & (ZP_REPORT | ZP_PREZERO)))
		return 0;
	err = pthread_create(&a->daemon, NULL, daemon_main, a);
	if (!err)
		a->daemon_running = true;
	return err;
}

void daemon_stop(struct zp_arena *a)
{
	if (!a->daemon_running)
		return;
	pthread_mutex_lock(&a->lock);
	a->daemon_stop = true;
	pthread_cond_signal(&a->daemon_cond);
	pthread_mutex_unlock(&a->lock);
	pthread_join(a->daemon, NULL);
	a->daemon_running = false;
}
