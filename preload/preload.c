/* SPDX-License-Identifier: MIT */
/*
 * preload.c - libzpage-preload.so: the malloc family, with large requests
 * served by one process-wide zpage arena (LD_PRELOAD, or zpage-run).
 *
 * Requests of at least ZPAGE_PRELOAD_MIN bytes (default 1 MiB) go to the
 * arena through zp_alloc() (exact sizes: 3 MiB costs 3 MiB); smaller ones,
 * and any large one the arena cannot serve (exhausted, larger than its
 * largest block, an alignment above a page that the block does not give,
 * or no arena at all), go to the next allocator in the link order, found
 * with dlsym(RTLD_NEXT).  Pointers inside the arena's range are zpage's;
 * any other goes to the next allocator's free().
 *
 *   calloc        a zeroing allocation whose target is the returned address:
 *                 pages already known zero (fresh, reported, pre-zeroed) are
 *                 not cleared, the rest are, the first page last
 *   realloc       a zpage block keeps its address while the new size fits its
 *                 pages, or the free pages after it in its block
 *                 (zp_grow_in_place()); otherwise a new zpage block gets its pages moved
 *                 (mremap, no copy: zp_move_and_free(), from 2 MiB, where the
 *                 kernel's moves are safe), or a copy; after a move that lost
 *                 its target (-ENOTRECOVERABLE), one message, and copies only
 *   free          of a zpage pointer that is not a live allocation (double or
 *                 interior free): one message on stderr for the process,
 *                 then ignored, the arena intact
 *
 * The arena: ZPAGE_PRELOAD_ARENA bytes reserved (default: the machine's
 * memory, at least 1 GiB), nothing committed until used; blocks up to
 * 1 GiB; clears with cached stores up to ZPAGE_PRELOAD_NT_MIN (default 16
 * MiB: the program writes what it asked for, and a block that fits the
 * last-level cache is better left there); reporting and pre-zeroing on
 * (ZP_REPORT | ZP_PREZERO, prezero_bytes ZPAGE_PREZERO_BYTES, default 32
 * MiB), pre-zeroing only after PRELOAD_QUIET_MS (20 ms) without a buddy
 * allocation or free, so an idle program gives its memory back after
 * ZPAGE_REPORT_DELAY_MS and gets zeroed blocks ready, and a busy one reuses
 * its blocks hot.  ZPAGE_PRELOAD_STATS=1 prints zp_arena_stats()
 * and zp_arena_dump() on stderr at exit (zpage-run --stats).
 *
 * Bootstrapping: dlsym() may allocate; while the next allocator is being
 * looked up, allocations come from a small static buffer, and frees of it
 * are ignored.
 *
 * Invariants: never abort a program that would run without the preload;
 * a pointer is zpage's iff it lies in the arena's reserved range.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "internal.h"

#define EXPORT __attribute__((visibility("default")))

#define DEFAULT_MIN	 ((size_t)1 << 20)
#define DEFAULT_NT_MIN	 ((size_t)16 << 20)
#define DEFAULT_PREZERO	 ((size_t)32 << 20)
#define PRELOAD_MAXORDER 18u /* 1 GiB blocks */
#define PRELOAD_QUIET_MS 20u
#define MOVE_MIN	 ((size_t)2 << 20)

/* the next allocator */
static void *(*next_malloc)(size_t);
static void (*next_free)(void *);
static void *(*next_calloc)(size_t, size_t);
static void *(*next_realloc)(void *, size_t);
static int (*next_posix_memalign)(void **, size_t, size_t);
static void *(*next_aligned_alloc)(size_t, size_t);
static void *(*next_memalign)(size_t, size_t);
static size_t (*next_malloc_usable_size)(void *);

/* bootstrap: what dlsym() allocates before the next allocator is known */
static _Alignas(64) char boot_buf[64 << 10];
static size_t boot_used;
static __thread int resolving __attribute__((tls_model("initial-exec"))); /* this thread is in resolve() */
static atomic_bool resolved;	 /* the next_* pointers are set */
static pthread_once_t resolve_once = PTHREAD_ONCE_INIT;

static struct zp_arena *arena;
static _Atomic uintptr_t arena_lo, arena_hi; /* [lo, hi): zpage's pointers; 0, 0 before */
static size_t min_bytes = DEFAULT_MIN;
static pthread_once_t arena_once = PTHREAD_ONCE_INIT;
static atomic_bool said_bad_free;
/* page moves in realloc: made, refused (the block copied instead), and lost
 * (-ENOTRECOVERABLE: no new move is started in this process; one that
 * passed the check already may still run) */
static _Atomic unsigned long moves_made, moves_refused, moves_lost;
#ifdef ZPAGE_PRELOAD_TEST_FAULTS
/* tests/preload.sh's build only: ZPAGE_TEST_FAIL_MOVES=1 or 2 makes every
 * move fail as zp_test_fail_next_move() says; ZPAGE_TEST_FAIL_MAPS=1 makes
 * every thread cache's mapping fail (zp_test_fail_private_maps()) */
static int test_fail_moves;
#define TEST_FAIL_MAPS (1 << 30)
static bool test_fail_maps;
#endif

/* Only the thread inside resolve() gets here (others wait in pthread_once). */
static void *boot_alloc(size_t n)
{
	size_t at = (boot_used + 15) & ~(size_t)15;

	if (n > sizeof(boot_buf) || at + n > sizeof(boot_buf)) {
		errno = ENOMEM;
		return NULL;
	}
	boot_used = at + n;
	return boot_buf + at;
}

static bool is_boot(const void *p)
{
	return (const char *)p >= boot_buf && (const char *)p < boot_buf + sizeof(boot_buf);
}

static int stats_fd = -1; /* stderr as it was at start-up: programs close theirs at exit */
static void print_stats(void);
static void env_bytes(enum env_id id, size_t *out);

static void resolve(void)
{
	resolving = 1;
	next_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
	next_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
	next_calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
	next_realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
	next_posix_memalign = (int (*)(void **, size_t, size_t))dlsym(RTLD_NEXT, "posix_memalign");
	next_aligned_alloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "aligned_alloc");
	next_memalign = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "memalign");
	next_malloc_usable_size = (size_t(*)(void *))dlsym(RTLD_NEXT, "malloc_usable_size");
	/* the settings every request reads, before any request is served
	 * (still resolving: what they allocate comes from the static buffer) */
	env_bytes(ENV_PRELOAD_MIN, &min_bytes);
#ifdef ZPAGE_PRELOAD_TEST_FAULTS
	{
		const char *f = getenv("ZPAGE_TEST_FAIL_MOVES"), *m = getenv("ZPAGE_TEST_FAIL_MAPS");

		test_fail_moves = f ? atoi(f) : 0;
		test_fail_maps = m && *m == '1';
		if (test_fail_maps)
			zp_test_fail_private_maps(TEST_FAIL_MAPS);
	}
#endif
	{
		const char *st = getenv("ZPAGE_PRELOAD_STATS");

		if (st && *st == '1' && (stats_fd = fcntl(2, F_DUPFD_CLOEXEC, 3)) >= 0)
			atexit(print_stats);
	}
	if (next_malloc && next_free && next_calloc && next_realloc && next_posix_memalign && next_aligned_alloc &&
	    next_memalign)
		atomic_store_explicit(&resolved, true, memory_order_release);
	else
		fprintf(stderr, "zpage-run: no allocator after the preload in the link order\n");
	resolving = 0;
}

/* The next allocator is known (false: we are inside resolve(), or there is
 * none: then only the bootstrap buffer serves). */
static bool ready(void)
{
	if (__builtin_expect(atomic_load_explicit(&resolved, memory_order_acquire), 1))
		return true;
	if (resolving)
		return false;
	pthread_once(&resolve_once, resolve);
	return atomic_load_explicit(&resolved, memory_order_acquire);
}

static void print_stats(void)
{
	struct zp_stats st;
	FILE *f;

	if (!arena || stats_fd < 0 || !(f = fdopen(stats_fd, "w")))
		return;
	zp_arena_stats(arena, &st);
	fprintf(f,
		"zpage-run: arena of %zu MiB: %zu pages free (%zu zeroed, %zu reported); cleared %llu, clears "
		"skipped %llu, reported %llu, refaulted %llu, prezeroed %llu; pre-zero reserve %zu KiB; realloc page "
		"moves %lu, refused %lu, lost %lu%s\n",
		st.nr_pages >> (20 - ZP_PAGE_SHIFT), st.nr_free, st.nr_free_zeroed, st.nr_free_reported,
		(unsigned long long)st.pages_cleared, (unsigned long long)st.pages_clear_skipped,
		(unsigned long long)st.pages_reported, (unsigned long long)st.pages_refaulted,
		(unsigned long long)st.pages_prezeroed, arena->prezero_bytes >> 10, atomic_load(&moves_made),
		atomic_load(&moves_refused), atomic_load(&moves_lost),
		os_moves_supported() ? "" : " (this kernel's moves are not safe: realloc copies)");
#ifdef ZPAGE_PRELOAD_TEST_FAULTS
	if (test_fail_maps)
		fprintf(f, "zpage-run: test: %d thread cache mappings refused\n",
			TEST_FAIL_MAPS - zp_test_fail_private_maps(0));
#endif
	zp_arena_dump(arena, f);
	fclose(f);
}

/* A byte value (ZPAGE_PRELOAD_*, ZPAGE_PREZERO_BYTES) through env.c (its
 * parsing, ranges and one message per variable); @out unchanged when unset
 * or invalid. */
static void env_bytes(enum env_id id, size_t *out)
{
	uint64_t v;

	if (env_get(id, &v))
		*out = (size_t)v;
}

/* This thread is in arena_init(): what it allocates (zp_arena_create()'s
 * calloc, stdio's buffers) must not come back here, into the same once. */
static __thread bool making_arena __attribute__((tls_model("initial-exec")));

static void arena_make(void)
{
	long pages = sysconf(_SC_PHYS_PAGES);
	size_t mem = pages > 0 ? (size_t)pages * (size_t)sysconf(_SC_PAGESIZE) : (size_t)4 << 30;
	size_t size = mem < ((size_t)1 << 30) ? (size_t)1 << 30 : mem & ~(size_t)(ZP_PAGE_SIZE - 1);
	size_t nt_min = DEFAULT_NT_MIN, prezero = DEFAULT_PREZERO;
	struct zp_config c;

	struct rlimit rl;
	FILE *f;
	int overcommit = 0;

	/* the reservation counts against RLIMIT_AS, and against the commit
	 * limit under strict overcommit (MAP_NORESERVE is ignored there):
	 * leave the program most of either */
	if (!getrlimit(RLIMIT_AS, &rl) && rl.rlim_cur != RLIM_INFINITY && size > rl.rlim_cur / 4)
		size = rl.rlim_cur / 4;
	if ((f = fopen("/proc/sys/vm/overcommit_memory", "r"))) {
		if (fscanf(f, "%d", &overcommit) != 1)
			overcommit = 0;
		fclose(f);
	}
	if (overcommit == 2 && size > mem / 8)
		size = mem / 8;
	env_bytes(ENV_PRELOAD_ARENA, &size);
	env_bytes(ENV_PRELOAD_NT_MIN, &nt_min);
	/* unset, empty or invalid: the drop-in's reserve, not the library's
	 * default of none; 0 is a valid value (no reserve) */
	env_bytes(ENV_PREZERO_BYTES, &prezero);
	size &= ~(size_t)(ZP_PAGE_SIZE - 1);
	c = (struct zp_config){
		.size = size,
		.max_order = PRELOAD_MAXORDER,
		.flags = ZP_REPORT | ZP_PREZERO,
		.clear_nt_min = nt_min,
		.prezero_bytes = prezero, /* 0 reads the variable again: 0 */
	};
	if (c.size < (ZP_PAGE_SIZE << c.max_order)) {
		c.max_order = 0;
		while ((ZP_PAGE_SIZE << (c.max_order + 1)) <= c.size)
			c.max_order++;
	}
	arena = zp_arena_create(&c);
	if (!arena) {
		fprintf(stderr, "zpage-run: no arena (%s): every allocation goes to the next allocator\n",
			strerror(errno));
		return;
	}
	/* pre-zero only what lies unused for PRELOAD_QUIET_MS: a program that
	 * frees and reallocates at once gets its block back hot, cleared by
	 * the allocation, not cold from the thread's non-temporal clear */
	zlock_lock(&arena->lock);
	arena->prezero_quiet_ms = PRELOAD_QUIET_MS;
	zlock_unlock(&arena->lock);
	atomic_store(&arena_hi, (uintptr_t)arena->base + (arena->nr_pages << ZP_PAGE_SHIFT));
	atomic_store(&arena_lo, (uintptr_t)arena->base);
}

static void arena_init(void)
{
	making_arena = true; /* its allocations go to the next allocator */
	arena_make();
	making_arena = false;
}

static bool owned(const void *p)
{
	uintptr_t lo = atomic_load_explicit(&arena_lo, memory_order_relaxed);

	return lo && (uintptr_t)p >= lo && (uintptr_t)p < atomic_load_explicit(&arena_hi, memory_order_relaxed);
}

/* A large request served by the arena, or NULL (then the caller asks the
 * next allocator). */
static void *zp_large(size_t size, bool zero)
{
	void *p;
	int saved = errno;

	if (size < min_bytes || making_arena)
		return NULL;
	pthread_once(&arena_once, arena_init);
	if (!arena)
		return NULL;
	p = zp_alloc(arena, zero ? ZP_GFP_ZERO : 0, size, 0);
	errno = saved; /* a fallback is not a failure */
	if (p)
		return p;
	return NULL;
}

static void bad_free(const void *p)
{
	if (!atomic_exchange(&said_bad_free, true))
		fprintf(stderr,
			"zpage-run: free(%p): not a live allocation (double or interior free); ignored, and so is "
			"any other\n",
			p);
}

EXPORT void *malloc(size_t size)
{
	void *p;

	if (!ready())
		return boot_alloc(size);
	if ((p = zp_large(size, false)))
		return p;
	return next_malloc(size);
}

EXPORT void free(void *p)
{
	if (!p || is_boot(p))
		return;
	if (owned(p)) {
		int saved = errno; /* free() leaves errno alone (POSIX.1-2024) */

		if (zp_free(arena, p))
			bad_free(p);
		errno = saved;
		return;
	}
	if (ready())
		next_free(p);
}

EXPORT void *calloc(size_t n, size_t size)
{
	size_t total;
	void *p;

	if (__builtin_mul_overflow(n, size, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	if (!ready())
		return boot_alloc(total); /* static: zero */
	if ((p = zp_large(total, true)))
		return p;
	return next_calloc(n, size);
}

EXPORT size_t malloc_usable_size(void *p)
{
	if (!p)
		return 0;
	if (is_boot(p))
		return 0;
	if (owned(p))
		return zp_usable_size(arena, p);
	return ready() && next_malloc_usable_size ? next_malloc_usable_size(p) : 0;
}

EXPORT void *realloc(void *old, size_t size)
{
	size_t have;
	void *p;

	if (!old)
		return malloc(size);
	if (!ready())
		return NULL;
	if (!owned(old) && !is_boot(old)) {
		if (size < min_bytes || !next_malloc_usable_size || !(p = zp_large(size, false)))
			return next_realloc(old, size);
		/* a small block grows past the threshold: into the arena */
		have = next_malloc_usable_size ? next_malloc_usable_size(old) : 0;
		memcpy(p, old, have < size ? have : size);
		next_free(old);
		return p;
	}
	if (!size) {
		free(old);
		return NULL;
	}
	have = is_boot(old) ? (size_t)(boot_buf + sizeof(boot_buf) - (char *)old) : zp_usable_size(arena, old);
	if (!is_boot(old) && !have) {
		bad_free(old);
		return NULL;
	}
	if (size <= have && !is_boot(old))
		return old; /* fits its pages */
	if (!is_boot(old) && !zp_grow_in_place(arena, old, size))
		return old; /* the pages after it were free */
	p = malloc(size);
	if (!p)
		return NULL;
	/* a zpage block of 2 MiB or more into a zpage block: move the pages,
	 * do not copy them (each move splits the arena's mapping where it
	 * lands: only large moves are worth that) */
	if (!is_boot(old) && owned(p) && have >= MOVE_MIN && !atomic_load_explicit(&moves_lost, memory_order_relaxed)) {
		int err;

#ifdef ZPAGE_PRELOAD_TEST_FAULTS
		if (test_fail_moves)
			zp_test_fail_next_move(test_fail_moves);
#endif
		err = zp_move_and_free(arena, old, p, have);
		if (!err) {
			atomic_fetch_add_explicit(&moves_made, 1, memory_order_relaxed);
			return p;
		}
		if (err != -ENOTRECOVERABLE) {
			atomic_fetch_add_explicit(&moves_refused, 1, memory_order_relaxed);
		} else {
			/* a failed move left part of p unmapped and another
			 * mapping may sit there (os_move_pages()): p is never
			 * written nor freed (its pages stay allocated, lost);
			 * the copy goes to the next allocator, and no new move
			 * is started */
			if (!atomic_fetch_add(&moves_lost, 1))
				fprintf(stderr,
					"zpage-run: realloc: a page move (mremap) failed and left %zu bytes of the "
					"arena unusable; realloc copies from now on\n",
					zp_usable_size(arena, p));
			p = next_malloc ? next_malloc(size) : NULL;
			if (!p)
				return NULL;
		}
	}
	memcpy(p, old, have < size ? have : size);
	free(old);
	return p;
}

EXPORT void *reallocarray(void *old, size_t n, size_t size)
{
	size_t total;

	if (__builtin_mul_overflow(n, size, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc(old, total);
}

/* An aligned large request: the arena's blocks are aligned to the power of
 * two that holds them, at least a page. */
static void *zp_aligned(size_t align, size_t size)
{
	size_t n, block;

	if (size < min_bytes || size > ((size_t)1 << 62))
		return NULL;
	n = (size + ZP_PAGE_SIZE - 1) & ~(size_t)(ZP_PAGE_SIZE - 1);
	block = (size_t)1 << (63 - __builtin_clzll((unsigned long long)n));
	if (block < n)
		block <<= 1;
	if (align > block)
		return NULL;
	return zp_large(size, false);
}

EXPORT int posix_memalign(void **out, size_t align, size_t size)
{
	void *p;

	if (!align || (align & (align - 1)) || align % sizeof(void *))
		return EINVAL;
	if (!ready()) {
		p = boot_alloc(size + align);
		if (!p)
			return ENOMEM;
		*out = (void *)(((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1));
		return 0;
	}
	if ((p = zp_aligned(align, size))) {
		*out = p;
		return 0;
	}
	return next_posix_memalign(out, align, size);
}

EXPORT void *aligned_alloc(size_t align, size_t size)
{
	void *p;

	if (!ready())
		return NULL;
	if (align && !(align & (align - 1)) && (p = zp_aligned(align, size)))
		return p;
	return next_aligned_alloc(align, size);
}

EXPORT void *memalign(size_t align, size_t size)
{
	void *p;

	if (!ready())
		return NULL;
	if (align && !(align & (align - 1)) && (p = zp_aligned(align, size)))
		return p;
	return next_memalign(align, size);
}

EXPORT void *valloc(size_t size)
{
	return memalign((size_t)sysconf(_SC_PAGESIZE), size);
}

EXPORT void *pvalloc(size_t size)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);

	if (size > SIZE_MAX - pg) {
		errno = ENOMEM;
		return NULL;
	}
	return memalign(pg, (size + pg - 1) & ~(pg - 1));
}
