/* SPDX-License-Identifier: MIT */
/*
 * arena.c - creating and destroying an arena, its configuration, stats, and
 * the registry of live arenas that the fork handlers walk.
 *
 * The managed range is one private anonymous mapping, reserved with
 * MAP_NORESERVE (nothing is committed until touched), aligned to the
 * largest block and to 2 MiB (os_reserve()).  Transparent huge pages are
 * requested (the first write to a 2 MiB range may then commit all of it)
 * unless ZP_NOHUGEPAGE.  Fresh memory has never been touched, so every page
 * starts zeroed+reported.
 *
 * Metadata (descriptors and bitmaps, 12.25 bytes per page) is a second
 * mapping, outside the managed range, so no caller's stray write to its
 * blocks can corrupt it.  It is reserved like the range: fresh memory's
 * state is all-zero metadata (zero_state.c), and creation lists no block
 * (buddy.c: the frontier), so metadata costs memory where pages are used
 * (a 1 TiB arena is created without touching any of it).
 *
 * fork: the handlers (registered at load, os.c) take, in this
 * order, the registry lock, tc_lock, every arena's thread caches quiesced
 * (tcache.c, one barrier for all), then each arena's lock: the documented
 * lock order, so the child never inherits a lock held, or a cache being
 * changed, by a thread that does not exist there.  Background passes stop
 * at their next lock.  In the child every other thread's cache goes back
 * to the buddy lists (tc_fork_child()) and the arena is repaired
 * (report_fork_child()) before the locks are released.
 *
 * Invariants: base % max(block_size(max_order), 2 MiB) == 0; nr_pages < NIL;
 * after zp_arena_create() returns, every field above the lock in struct
 * zp_arena is immutable, except the test-only clearing controls and
 * tc_orders, daemon_restart, the gates fast_alloc_orders and
 * fast_free_orders (atomic, gates_update()), warm_last (under the lock), tcaches (under
 * tc_lock) and the tc_gone counters (atomic); an arena is on the registry
 * from the end of its creation to the start of its destruction.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

#define DEFAULT_SIZE		((size_t)1 << 30)
#define DEFAULT_MAX_ORDER	10u
#define DEFAULT_REPORT_ORDER	9u
#define DEFAULT_REPORT_DELAY_MS 2000u
#define HUGE_ALIGN		((size_t)2 << 20)
#define ALL_FLAGS                                                                                                      \
	(ZP_INIT_ON_ALLOC | ZP_INIT_ON_FREE | ZP_VERIFY | ZP_REPORT | ZP_PREZERO | ZP_REPORT_MADV_FREE | ZP_NOHUGEPAGE)
#define DEFAULT_PREZERO_RATE_MB 1024

/*
 * The arena lock is held for short list operations only (no system call,
 * no bulk clear), so a waiter spins briefly before sleeping (glibc's
 * adaptive mutex) rather than paying a futex sleep and wake-up.
 */
static void arena_lock_init(struct zlock *l)
{
	pthread_mutexattr_t at;

	pthread_mutexattr_init(&at);
	pthread_mutexattr_settype(&at, PTHREAD_MUTEX_ADAPTIVE_NP);
	zlock_init(l, &at);
	pthread_mutexattr_destroy(&at);
}

/*
 * Fill in defaults, from the environment for fields left 0, and validate
 * what the caller gave.  An environment value never makes a valid
 * configuration invalid: out of range it is ignored, above max_order it is
 * clamped (env.c says so on stderr).  Returns 0 or an errno value.
 */
static int config_resolve(const struct zp_config *in, struct zp_config *c, size_t *prezero_rate)
{
	uint64_t v;

	*c = in ? *in : (struct zp_config){0};
	if (!c->size)
		c->size = DEFAULT_SIZE;
	if (!c->max_order)
		c->max_order = DEFAULT_MAX_ORDER;
	if (c->flags & ~ALL_FLAGS)
		return EINVAL;
	if (c->size % ZP_PAGE_SIZE || c->size / ZP_PAGE_SIZE >= NIL)
		return EINVAL;
	if (c->max_order > ZP_MAX_ORDER_LIMIT || c->report_order > c->max_order)
		return EINVAL;

	if (!c->report_order) {
		c->report_order = c->max_order < DEFAULT_REPORT_ORDER ? c->max_order : DEFAULT_REPORT_ORDER;
		if (env_get(ENV_REPORT_ORDER, &v)) {
			if (v > c->max_order) {
				env_say_clamped(ENV_REPORT_ORDER, v, c->max_order, "the arena's max_order");
				v = c->max_order;
			}
			c->report_order = (unsigned)v;
		}
	}
	if (!c->report_delay_ms)
		c->report_delay_ms = env_get(ENV_REPORT_DELAY_MS, &v) ? (unsigned)v : DEFAULT_REPORT_DELAY_MS;
	if (!c->prezero_bytes && env_get(ENV_PREZERO_BYTES, &v))
		c->prezero_bytes = (size_t)v;
	*prezero_rate = (size_t)(env_get(ENV_PREZERO_RATE_MB, &v) ? v : DEFAULT_PREZERO_RATE_MB) << 20;
	return 0;
}

static int map_meta(struct zp_arena *a)
{
	size_t words = (a->nr_pages + 63) / 64;
	size_t desc = (a->nr_pages * sizeof(struct page) + 63) & ~(size_t)63;
	char *p;

	a->meta_len = desc + 2 * words * sizeof(uint64_t);
	p = os_map_meta(a->meta_len); /* faulted in as pages are used */
	if (!p)
		return -1;
	a->meta_addr = p;
	a->pages = (struct page *)p;
	a->dirty_bm = (_Atomic uint64_t *)(p + desc);
	a->resident_bm = a->dirty_bm + words;
	return 0;
}

/* ---- the registry of live arenas, for fork ---- */

static struct zlock registry_lock = {PTHREAD_MUTEX_INITIALIZER, 0};
static struct zp_arena *registry;

static void registry_add(struct zp_arena *a)
{
	os_atfork_init();
	zlock_lock(&registry_lock);
	a->reg_prev = NULL;
	a->reg_next = registry;
	if (registry)
		registry->reg_prev = a;
	registry = a;
	zlock_unlock(&registry_lock);
}

static void registry_del(struct zp_arena *a)
{
	zlock_lock(&registry_lock);
	if (a->reg_prev)
		a->reg_prev->reg_next = a->reg_next;
	else
		registry = a->reg_next;
	if (a->reg_next)
		a->reg_next->reg_prev = a->reg_prev;
	zlock_unlock(&registry_lock);
}

/* The forking thread's signal mask before the prepare handler blocked
 * signals (one fork at a time gets past registry_lock). */
static sigset_t fork_sigmask;

void arenas_fork_prepare(void)
{
	sigset_t old;

	/* no handler may run while the fork holds every lock (it would wait
	 * for them forever), until the parent or child handler has let go */
	os_block_signals(&old);
	zlock_lock(&registry_lock);
	fork_sigmask = old;
	tc_lock_global();
	for (struct zp_arena *a = registry; a; a = a->reg_next)
		tc_stop(a);
	tc_barrier(); /* one for every arena */
	for (struct zp_arena *a = registry; a; a = a->reg_next) {
		tc_wait(a);
		zlock_lock(&a->lock);
	}
}

static void fork_release(void)
{
	sigset_t old = fork_sigmask;

	for (struct zp_arena *a = registry; a; a = a->reg_next) {
		zlock_unlock(&a->lock);
		tc_resume(a);
	}
	tc_unlock_global();
	zlock_unlock(&registry_lock);
	os_restore_signals(&old);
}

void arenas_fork_parent(void)
{
	fork_release();
}

void arenas_fork_child(void)
{
	tc_fork_child_global();
	for (struct zp_arena *a = registry; a; a = a->reg_next) {
		report_fork_child(a); /* first: it re-initialises the condition variables */
		tc_fork_child(a);     /* whose free_one_page() may signal them */
	}
	fork_release();
}

/* ---- create, destroy ---- */

struct zp_arena *zp_arena_create(const struct zp_config *cfg)
{
	struct zp_config c;
	struct zp_arena *a;
	size_t align, rate;
	int err = config_resolve(cfg, &c, &rate);

	if (err) {
		errno = err;
		return NULL;
	}
	a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->nr_pages = c.size / ZP_PAGE_SIZE;
	a->max_order = c.max_order;
	a->flags = c.flags;
	a->report_order = c.report_order;
	/* report_order <= max_order: a block a pass may report forms at a free */
	a->merge_order = a->max_order < PAGEBLOCK_ORDER ? a->max_order
			 : a->report_order > PAGEBLOCK_ORDER ? a->report_order : PAGEBLOCK_ORDER;
	a->report_delay_ms = c.report_delay_ms;
	a->prezero_bytes = c.prezero_bytes;
	a->prezero_rate = rate;

	align = ZP_PAGE_SIZE << a->max_order;
	if (align < HUGE_ALIGN)
		align = HUGE_ALIGN;
	errno = 0;
	a->base = os_reserve(a->nr_pages << ZP_PAGE_SHIFT, align, !(c.flags & ZP_NOHUGEPAGE));
	if (a->base) {
		a->map_addr = a->base;
		a->map_len = a->nr_pages << ZP_PAGE_SHIFT;
	}
	if (!a->base || map_meta(a)) {
		/* mmap's EINVAL here means "too large", its EAGAIN "more than
		 * RLIMIT_MEMLOCK" (under mlockall(MCL_FUTURE)) */
		err = !errno || errno == EINVAL || errno == EAGAIN ? ENOMEM : errno;
		goto fail;
	}
	arena_lock_init(&a->lock);
	tc_init(a);
	clear_init(a, c.clear_hot_bytes, c.clear_nt_min);
	err = report_init(a, c.flags & ZP_REPORT_MADV_FREE);
	if (!err) {
		zlock_lock(&a->lock);
		buddy_init(a);
		zlock_unlock(&a->lock);
		err = daemon_start(a);
		if (!err) {
			registry_add(a);
			return a;
		}
		report_destroy(a);
	}
	zlock_destroy(&a->lock);

fail:
	os_unmap(a->meta_addr, a->meta_len);
	os_unmap(a->map_addr, a->map_len);
	free(a);
	errno = err;
	return NULL;
}

/* Not a cancellation point: joining the background thread is one, and a
 * destroy cancelled there would leave the arena mapped and its thread
 * unjoined. */
void zp_arena_destroy(struct zp_arena *a)
{
	int cs;

	if (!a)
		return;
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cs);
	registry_del(a);
	tc_destroy(a); /* first: an exiting thread's cache may be on its way back */
	daemon_stop(a);
	report_destroy(a);
	zlock_destroy(&a->lock);
	os_unmap(a->meta_addr, a->meta_len);
	os_unmap(a->map_addr, a->map_len);
	free(a);
	pthread_setcancelstate(cs, NULL);
}

void zp_arena_stats(struct zp_arena *a, struct zp_stats *st)
{
	if (!a) {
		*st = (struct zp_stats){0};
		return;
	}
	lock_all(a);
	stats_locked(a, st);
	unlock_all(a);
}

/* Every lock held.  The counters too: a pass counts its work under the
 * arena lock as it puts its blocks back. */
void stats_locked(struct zp_arena *a, struct zp_stats *st)
{
	struct tc_totals tc;
	struct zcount c;

	lock_assert_all_held(a);
	tc_sum(a, &tc);
	c = a->cnt;
	zcount_add(&c, &tc.cnt);
	c.pages += frontier_pages(a); /* never used: zeroed and reported */
	c.reported += frontier_pages(a);
	*st = (struct zp_stats){
		.nr_pages = a->nr_pages,
		.nr_free = c.pages + a->isolated_pages,
		.nr_free_zeroed = c.zeroed,
		.nr_free_reported = c.reported,
		.pages_cleared = atomic_load(&a->pages_cleared) + tc.cleared,
		.pages_clear_skipped = tc.skipped,
		.pages_reported = atomic_load(&a->pages_reported),
		.pages_refaulted = tc.refaulted,
		.verify_failures = atomic_load(&a->verify_failures),
		.pages_prezeroed = atomic_load(&a->pages_prezeroed),
		.report_zeroes = a->report_zeroes,
	};
}
