/* SPDX-License-Identifier: MIT */
/*
 * arena.c - creating and destroying an arena, its configuration, stats.
 *
 * The managed range is one private anonymous mapping, reserved with
 * MAP_NORESERVE (nothing is committed until touched), trimmed so that its
 * base is aligned to the largest block and to 2 MiB, with transparent huge
 * pages requested (MADV_HUGEPAGE; ignored where the OS has none).  Fresh
 * memory has never been touched, so every page starts zeroed+reported.
 *
 * Metadata (descriptors and bitmaps, 12.25 bytes per page) is a second
 * mapping, outside the managed range, so no caller's stray write to its
 * blocks can corrupt it.  It is prefaulted when at most 64 MiB.
 *
 * Invariants: base % max(block_size(max_order), 2 MiB) == 0; nr_pages < NIL;
 * after zp_arena_create() returns, every field above the lock in struct
 * zp_arena is immutable, except the test-only clearing controls.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "internal.h"

#define DEFAULT_SIZE		((size_t)1 << 30)
#define DEFAULT_MAX_ORDER	10u
#define DEFAULT_REPORT_ORDER	9u
#define DEFAULT_REPORT_DELAY_MS 2000u
#define HUGE_ALIGN		((size_t)2 << 20)
#define META_POPULATE_MAX	((size_t)64 << 20)
#define ALL_FLAGS		(ZP_INIT_ON_ALLOC | ZP_INIT_ON_FREE | ZP_VERIFY | ZP_REPORT | ZP_PREZERO | ZP_REPORT_MADV_FREE)
#define DEFAULT_PREZERO_RATE_MB 1024

/* A default from the environment, read when the field is left 0. */
static size_t env_size(const char *name, size_t dflt)
{
	const char *v = getenv(name);
	char *end;
	unsigned long long x;

	if (!v || !*v)
		return dflt;
	errno = 0;
	x = strtoull(v, &end, 0);
	if (errno || *end || !x) {
		fprintf(stderr, "zpage: ignoring %s=%s (not a positive number)\n", name, v);
		return dflt;
	}
	return (size_t)x;
}

/*
 * The arena lock is held for short list operations only (no system call,
 * no bulk clear), so a waiter spins briefly before sleeping (glibc's
 * adaptive mutex) rather than paying a futex sleep and wake-up.
 */
static void arena_lock_init(pthread_mutex_t *m)
{
	pthread_mutexattr_t at;

	pthread_mutexattr_init(&at);
	pthread_mutexattr_settype(&at, PTHREAD_MUTEX_ADAPTIVE_NP);
	pthread_mutex_init(m, &at);
	pthread_mutexattr_destroy(&at);
}

/* Fill in defaults and validate.  Returns 0 or an errno value. */
static int config_resolve(const struct zp_config *in, struct zp_config *c)
{
	*c = in ? *in : (struct zp_config){0};
	if (!c->size)
		c->size = DEFAULT_SIZE;
	if (!c->max_order)
		c->max_order = DEFAULT_MAX_ORDER;
	if (!c->report_order)
		c->report_order =
			(unsigned)env_size("ZPAGE_REPORT_ORDER",
					   c->max_order < DEFAULT_REPORT_ORDER ? c->max_order : DEFAULT_REPORT_ORDER);
	if (!c->report_delay_ms)
		c->report_delay_ms = (unsigned)env_size("ZPAGE_REPORT_DELAY_MS", DEFAULT_REPORT_DELAY_MS);
	if (!c->prezero_bytes)
		c->prezero_bytes = env_size("ZPAGE_PREZERO_BYTES", 0);

	if (c->flags & ~ALL_FLAGS)
		return EINVAL;
	if (c->size % ZP_PAGE_SIZE || c->size / ZP_PAGE_SIZE >= NIL)
		return EINVAL;
	if (c->max_order > ZP_MAX_ORDER_LIMIT || c->report_order > c->max_order)
		return EINVAL;
	return 0;
}

static int map_range(struct zp_arena *a)
{
	size_t align = ZP_PAGE_SIZE << a->max_order;
	size_t len = a->nr_pages << ZP_PAGE_SHIFT;
	uintptr_t start, aligned;
	char *p;

	if (align < HUGE_ALIGN)
		align = HUGE_ALIGN;
	p = mmap(NULL, len + align, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return -1;
	start = (uintptr_t)p;
	aligned = (start + align - 1) & ~(uintptr_t)(align - 1);
	if (aligned > start)
		munmap(p, aligned - start);
	if (aligned + len < start + len + align)
		munmap((void *)(aligned + len), start + len + align - (aligned + len));
	a->map_addr = a->base = (char *)aligned;
	a->map_len = len;
	madvise(a->base, len, MADV_HUGEPAGE);
	return 0;
}

static int map_meta(struct zp_arena *a)
{
	size_t words = (a->nr_pages + 63) / 64;
	size_t desc = (a->nr_pages * sizeof(struct page) + 63) & ~(size_t)63;
	char *p;

	a->meta_len = desc + 2 * words * sizeof(uint64_t);
	/* Prefault metadata up to META_POPULATE_MAX (that covers a 20 GiB
	 * arena): otherwise the first allocations pay page faults on it. */
	p = mmap(NULL, a->meta_len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | (a->meta_len <= META_POPULATE_MAX ? MAP_POPULATE : MAP_NORESERVE), -1,
		 0);
	if (p == MAP_FAILED)
		return -1;
	a->meta_addr = p;
	a->pages = (struct page *)p;
	a->zero_bm = (_Atomic uint64_t *)(p + desc);
	a->report_bm = a->zero_bm + words;
	return 0;
}

struct zp_arena *zp_arena_create(const struct zp_config *cfg)
{
	struct zp_config c;
	struct zp_arena *a;
	int err = config_resolve(cfg, &c);

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
	a->report_delay_ms = c.report_delay_ms;
	a->prezero_bytes = c.prezero_bytes;

	errno = 0;
	if (map_range(a) || map_meta(a) || pcp_init(a)) {
		err = errno ? errno : ENOMEM;
		goto fail;
	}
	arena_lock_init(&a->lock);
	clear_init(a, c.clear_hot_bytes, c.clear_nt_min);
	a->prezero_rate = env_size("ZPAGE_PREZERO_RATE_MB", DEFAULT_PREZERO_RATE_MB) << 20;
	err = report_init(a, c.flags & ZP_REPORT_MADV_FREE);
	if (!err) {
		buddy_init(a);
		err = daemon_start(a);
		if (!err)
			return a;
		pthread_cond_destroy(&a->daemon_cond);
	}
	pthread_mutex_destroy(&a->lock);
	pcp_destroy(a);

fail:
	if (a->meta_addr)
		munmap(a->meta_addr, a->meta_len);
	if (a->map_addr)
		munmap(a->map_addr, a->map_len);
	free(a);
	errno = err == EINVAL ? ENOMEM : err; /* mmap's EINVAL here means "too large" */
	return NULL;
}

void zp_arena_destroy(struct zp_arena *a)
{
	if (!a)
		return;
	daemon_stop(a);
	pthread_cond_destroy(&a->daemon_cond);
	pcp_destroy(a);
	pthread_mutex_destroy(&a->lock);
	munmap(a->meta_addr, a->meta_len);
	munmap(a->map_addr, a->map_len);
	free(a);
}

void zp_arena_stats(struct zp_arena *a, struct zp_stats *st)
{
	struct zcount c;
	size_t isolated;

	if (!a) {
		*st = (struct zp_stats){0};
		return;
	}
	lock_all(a);
	c = a->cnt;
	isolated = a->isolated_pages;
	for (unsigned i = 0; i < a->nr_pcp; i++)
		zcount_add(&c, &a->pcp[i].cnt);
	unlock_all(a);

	*st = (struct zp_stats){
		.nr_pages = a->nr_pages,
		.nr_free = c.pages + isolated,
		.nr_free_zeroed = c.zeroed,
		.nr_free_reported = c.reported,
		.pages_cleared = atomic_load(&a->pages_cleared),
		.pages_clear_skipped = atomic_load(&a->pages_clear_skipped),
		.pages_reported = atomic_load(&a->pages_reported),
		.pages_refaulted = atomic_load(&a->pages_refaulted),
		.verify_failures = atomic_load(&a->verify_failures),
		.pages_prezeroed = atomic_load(&a->pages_prezeroed),
		.report_zeroes = a->report_zeroes,
	};
}
