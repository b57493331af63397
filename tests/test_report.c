/* SPDX-License-Identifier: MIT */
/*
 * Returning memory to the OS and pre-zeroing: a fake backend and clock for
 * the policy, the real madvise backend for resident memory, and threads
 * allocating and freeing while both passes run.
 */
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

struct fake {
	_Atomic uint64_t now;
	_Atomic size_t calls, bytes, attempts;
	_Atomic size_t min_len;
	int fail;		/* -errno to return, or 0 */
	_Atomic uintptr_t bad;	/* fail (-EINVAL) for this address, as for an mlocked page */
	_Atomic size_t bad_calls; /* calls that failed for it */
	bool fail_first;	/* the first address reported becomes bad */
	unsigned delay_us;	/* each call takes this long */
	_Atomic size_t hold_at; /* call number that blocks until released (0: none) */
	_Atomic int held, release;
};

static int fake_report(void *ctx, void *addr, size_t len)
{
	struct fake *f = ctx;
	size_t call = atomic_fetch_add(&f->attempts, 1) + 1;

	if (f->hold_at && call == f->hold_at) {
		f->held = 1;
		while (!f->release)
			usleep(1000);
	}
	if (f->delay_us)
		usleep(f->delay_us);
	if (f->fail_first && !f->bad)
		f->bad = (uintptr_t)addr;
	if (f->bad == (uintptr_t)addr) {
		f->bad_calls++;
		return -EINVAL;
	}
	if (f->fail)
		return f->fail;
	f->calls++;
	f->bytes += len;
	if (!f->min_len || len < f->min_len)
		f->min_len = len;
	return 0;
}

static uint64_t fake_now(void *ctx)
{
	return ((struct fake *)ctx)->now;
}

static struct zp_arena *fake_arena(struct fake *f, unsigned flags, bool zeroes, unsigned delay)
{
	struct zp_config c = {
		.size = 64 * 512 * ZP_PAGE_SIZE, .max_order = 10, .flags = flags, .report_delay_ms = delay};
	struct zp_arena *a = zp_arena_create(&c);
	struct zp_backend b = {"fake", fake_report, zeroes, fake_now, f};

	if (!a)
		abort();
	zp_test_set_backend(a, &b);
	return a;
}

static void report_pass_with_fake_backend(void)
{
	struct fake f = {0};
	struct zp_arena *a = fake_arena(&f, 0, true, 0);
	char *p;

	EXPECT_EQ(zp_arena_report(a), 0); /* fresh memory is reported already */
	EXPECT_EQ(f.calls, 0);
	t_dirty(a, 9, 4); /* 2048 dirty pages, merged into order-10 blocks */
	EXPECT_EQ(zp_arena_report(a), 4 * 512);
	EXPECT(f.calls >= 2 && f.min_len >= (ZP_PAGE_SIZE << 9));
	EXPECT_EQ(t_stats(a).pages_reported, 4 * 512);
	EXPECT_EQ(t_stats(a).nr_free_reported, 64 * 512);
	EXPECT_EQ(zp_arena_report(a), 0); /* nothing left to report */
	EXPECT_EQ(zp_arena_check(a), 0);

	/* reported pages come back zero with no library clear; a split keeps
	 * the other pages' reported bits */
	p = zp_alloc_pages(a, ZP_GFP_ZERO, 0, ZP_USER_ADDR_NONE);
	ASSERT(p);
	EXPECT_EQ(t_stats(a).pages_cleared, 0);
	EXPECT_EQ(t_stats(a).nr_free_reported, 64 * 512 - 1);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/* Free memory in order-8 pieces whose buddies stay allocated: below
 * report_order (9), never reported. */
static void small_blocks_never_reported(void)
{
	struct fake f = {0};
	struct zp_arena *a = fake_arena(&f, 0, true, 0);
	void *p[256];
	int n = 0;

	while (n < 256 && (p[n] = zp_alloc_pages(a, 0, 8, ZP_USER_ADDR_NONE)))
		n++;
	ASSERT_EQ(n, 128);
	for (int i = 0; i < n; i += 2)
		zp_free_pages(a, p[i], 8);
	EXPECT_EQ(zp_arena_report(a), 0);
	EXPECT_EQ(f.calls, 0);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/* A backend that does not promise zero (MADV_FREE): reported pages stay
 * dirty and a zeroing allocation clears them. */
static void madv_free_style_backend_leaves_pages_dirty(void)
{
	struct fake f = {0};
	struct zp_config c = {.size = 1024 * ZP_PAGE_SIZE, .max_order = 10}; /* one block */
	struct zp_backend b = {"fake-lazy", fake_report, false, fake_now, &f, NULL};
	struct zp_arena *a = zp_arena_create(&c);
	char *p;

	ASSERT(a);
	zp_test_set_backend(a, &b);
	t_dirty(a, 10, 1);
	EXPECT_EQ(zp_arena_report(a), 1024);
	EXPECT_EQ(t_stats(a).report_zeroes, 0);
	EXPECT_EQ(t_stats(a).nr_free_reported, 1024);
	EXPECT_EQ(zp_test_nr_free_blocks(a, 10, ZS_REPORTED), 1); /* the last choice, though not zero */
	p = zp_alloc_pages(a, ZP_GFP_ZERO, 10, ZP_USER_ADDR_NONE);
	ASSERT(p);
	EXPECT_EQ(t_stats(a).pages_cleared, 1024);
	EXPECT(t_all_zero(p, ZP_PAGE_SIZE << 10));
	zp_arena_destroy(a);
}

/* A failing system call: the error comes back, the blocks are put back
 * unchanged, the arena is intact. */
static void failing_backend(void)
{
	struct fake f = {.fail = -EIO};
	struct zp_arena *a = fake_arena(&f, 0, true, 0);
	struct zp_stats s0, s1;

	t_dirty(a, 10, 2);
	s0 = t_stats(a);
	EXPECT_EQ(zp_arena_report(a), -EIO);
	s1 = t_stats(a);
	EXPECT(t_stats_equal(&s0, &s1));
	EXPECT_EQ(zp_arena_check(a), 0);
	f.fail = 0;
	EXPECT_EQ(zp_arena_report(a), 2048);
	zp_arena_destroy(a);
}

/* The background thread reports nothing before the delay, everything after. */
static void background_waits_for_the_delay(void)
{
	struct fake f = {.now = 1000};
	struct zp_arena *a = fake_arena(&f, ZP_REPORT, true, 500);

	t_dirty(a, 10, 3);
	zp_test_kick(a);
	usleep(100 * 1000);
	EXPECT_EQ(t_stats(a).pages_reported, 0);
	f.now = 1400; /* still before the delay */
	zp_test_kick(a);
	usleep(50 * 1000);
	EXPECT_EQ(t_stats(a).pages_reported, 0);
	f.now = 1501;
	zp_test_kick(a);
	for (int i = 0; i < 300 && t_stats(a).pages_reported < 3072; i++)
		usleep(10 * 1000);
	EXPECT_EQ(t_stats(a).pages_reported, 3072);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a); /* stops and joins the thread */
}

/* The real madvise backend: resident memory drops, pages read zero. */
static void real_backend_returns_memory(void)
{
	struct zp_config c = {.size = (size_t)128 << 20};
	struct zp_arena *a = zp_arena_create(&c);
	long before, after, reported;
	char *p;

	ASSERT(a);
	if (!t_stats(a).report_zeroes)
		SKIP("MADV_DONTNEED does not zero-fill here (emulator?)");
	t_dirty(a, 10, 24); /* 96 MiB resident */
	before = t_rss_kib();
	reported = zp_arena_report(a);
	after = t_rss_kib();
	EXPECT_EQ(reported, 24 * 1024);
	T_NOTE("real backend: VmRSS %ld -> %ld KiB after reporting %ld KiB", before, after, reported * 4);
	EXPECT(before - after >= reported * 4 * 9 / 10);
	p = zp_alloc_pages(a, ZP_GFP_ZERO, 10, ZP_USER_ADDR_NONE);
	ASSERT(p);
	EXPECT(t_all_zero(p, ZP_PAGE_SIZE << 10));
	EXPECT_EQ(t_stats(a).pages_cleared, 0);
	zp_arena_destroy(a);
}

static void prezero_pass(void)
{
	struct zp_config c = {.size = (size_t)64 << 20, .prezero_bytes = (size_t)4 << 20};
	struct zp_arena *a = zp_arena_create(&c);
	long n;
	char *p;

	ASSERT(a);
	t_dirty(a, 10, 4); /* 16 MiB dirty */
	n = zp_arena_prezero(a, 0);
	EXPECT(n >= 1024 && n <= 2048); /* 4 MiB, whole blocks */
	EXPECT(t_stats(a).nr_free_zeroed >= 1024);
	EXPECT_EQ(t_stats(a).pages_prezeroed, n);
	EXPECT_EQ(zp_arena_prezero(a, 0), 0); /* target met */
	p = zp_alloc_pages(a, ZP_GFP_ZERO, 9, ZP_USER_ADDR_NONE);
	ASSERT(p);
	EXPECT_EQ(t_stats(a).pages_cleared, (uint64_t)n); /* the pass's only */
	EXPECT(t_all_zero(p, ZP_PAGE_SIZE << 9));
	EXPECT(zp_arena_prezero(a, 8192) > 0); /* an explicit amount */
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/* Threads allocating and freeing while reporting and pre-zeroing run, in
 * the background and as explicit passes. */
static struct zp_arena *shared;
static _Atomic int stop, errors;

static void *churn(void *arg)
{
	uint64_t r = (uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;
	void *p[16] = {0};
	unsigned o[16];

	while (!stop) {
		for (int i = 0; i < 16; i++) {
			r ^= r << 13, r ^= r >> 7, r ^= r << 17;
			if (p[i]) {
				if (zp_free_pages(shared, p[i], o[i]))
					errors++;
				p[i] = NULL;
			} else {
				o[i] = (unsigned)(r % 11);
				p[i] = zp_alloc_pages(shared, r & 64 ? ZP_GFP_ZERO : 0, o[i], ZP_USER_ADDR_NONE);
				if (p[i] && (r & 64) && !t_all_zero(p[i], ZP_PAGE_SIZE))
					errors++;
				if (p[i])
					memset(p[i], 1, ZP_PAGE_SIZE);
			}
		}
	}
	for (int i = 0; i < 16; i++)
		if (p[i] && zp_free_pages(shared, p[i], o[i]))
			errors++;
	return NULL;
}

static void *passes(void *arg)
{
	(void)arg;
	while (!stop) {
		if (zp_arena_report(shared) < 0 || zp_arena_prezero(shared, (size_t)2 << 20) < 0)
			errors++;
	}
	return NULL;
}

static void concurrent_report_and_prezero(void)
{
	struct zp_config c = {.size = (size_t)64 << 20,
			      .flags = ZP_REPORT | ZP_PREZERO,
			      .report_delay_ms = 5,
			      .prezero_bytes = (size_t)8 << 20};
	pthread_t t[3];

	shared = zp_arena_create(&c);
	ASSERT(shared);
	stop = errors = 0;
	pthread_create(&t[0], NULL, churn, (void *)1);
	pthread_create(&t[1], NULL, churn, (void *)2);
	pthread_create(&t[2], NULL, passes, NULL);
	usleep(400 * 1000);
	stop = 1;
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	EXPECT_EQ(errors, 0);
	EXPECT_EQ(zp_arena_check(shared), 0);
	EXPECT_EQ(t_stats(shared).nr_free, t_stats(shared).nr_pages);
	EXPECT(t_stats(shared).pages_reported > 0);
	zp_arena_destroy(shared);
}

/* The background thread sleeps when there is nothing to do (no polling),
 * wakes when frees leave dirty memory below the pre-zero target, and fills
 * the target. */
static void background_prezero_without_polling(void)
{
	struct zp_config c = {.size = (size_t)64 << 20,
			      .flags = ZP_REPORT | ZP_PREZERO,
			      .report_delay_ms = 600000,
			      .prezero_bytes = (size_t)8 << 20};
	struct zp_arena *a = zp_arena_create(&c);
	uint64_t s0;

	ASSERT(a);
	usleep(50 * 1000);
	s0 = zp_test_daemon_sleeps(a);
	usleep(300 * 1000); /* idle: fresh memory, nothing dirty, nothing to report */
	EXPECT(zp_test_daemon_sleeps(a) - s0 <= 1);
	t_dirty(a, 10, 4); /* 16 MiB dirty: below the 8 MiB zeroed target */
	for (int i = 0; i < 300 && t_stats(a).nr_free_zeroed < 2048; i++)
		usleep(10 * 1000);
	EXPECT(t_stats(a).nr_free_zeroed >= 2048);
	EXPECT(t_stats(a).pages_prezeroed >= 2048);
	usleep(50 * 1000);
	s0 = zp_test_daemon_sleeps(a);
	usleep(300 * 1000); /* target met: asleep again (waiting for the report time) */
	EXPECT(zp_test_daemon_sleeps(a) - s0 <= 1);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/* Reporting leaves prezero_bytes of zeroed resident memory alone. */
static void report_keeps_prezero_reserve(void)
{
	struct fake f = {0};
	struct zp_config c = {.size = (size_t)64 << 20, .prezero_bytes = (size_t)4 << 20};
	struct zp_arena *a = zp_arena_create(&c);
	struct zp_backend b = {"fake", fake_report, true, fake_now, &f};

	ASSERT(a);
	zp_test_set_backend(a, &b);
	t_dirty(a, 10, 4);
	EXPECT_EQ(zp_arena_prezero(a, (size_t)16 << 20), 4096);
	EXPECT_EQ(t_stats(a).nr_free_zeroed, 4096);
	EXPECT_EQ(zp_arena_report(a), 3072);
	EXPECT_EQ(t_stats(a).nr_free_zeroed, 1024);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/* Environment overrides of the defaults, read when a field is left 0. */
static void environment_overrides(void)
{
	struct zp_arena *a;

	setenv("ZPAGE_REPORT_DELAY_MS", "1234", 1);
	setenv("ZPAGE_REPORT_ORDER", "8", 1);
	setenv("ZPAGE_PREZERO_BYTES", "1048576", 1);
	a = zp_arena_create(NULL);
	ASSERT(a);
	EXPECT_EQ(a->report_delay_ms, 1234);
	EXPECT_EQ(a->report_order, 8);
	EXPECT_EQ(a->prezero_bytes, 1 << 20);
	zp_arena_destroy(a);
	T_DIAG("(a message about ignoring ZPAGE_REPORT_DELAY_MS=soon is expected here)");
	setenv("ZPAGE_REPORT_DELAY_MS", "soon", 1);
	a = zp_arena_create(&(struct zp_config){.report_order = 9});
	ASSERT(a);
	EXPECT_EQ(a->report_delay_ms, 2000); /* the bad value is ignored */
	EXPECT_EQ(a->report_order, 9);	     /* an explicit field wins */
	zp_arena_destroy(a);
	unsetenv("ZPAGE_REPORT_DELAY_MS");
	unsetenv("ZPAGE_REPORT_ORDER");
	unsetenv("ZPAGE_PREZERO_BYTES");
}

/* A real clock for a fake backend (wait_until given: timed waits). */
static uint64_t real_now(void *ctx)
{
	(void)ctx;
	return os_now_ms();
}

static void real_wait(void *ctx, pthread_cond_t *c, pthread_mutex_t *m, uint64_t deadline)
{
	(void)ctx;
	os_cond_wait_until(c, m, deadline);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static bool wait_for(struct zp_arena *a, uint64_t (*get)(const struct zp_stats *), uint64_t want, int ms)
{
	for (int i = 0; i < ms; i++) {
		struct zp_stats st = t_stats(a);

		if (get(&st) >= want)
			return true;
		usleep(1000);
	}
	return false;
}

static uint64_t st_prezeroed(const struct zp_stats *s)
{
	return s->pages_prezeroed;
}

/*
 * Item 3 of the OS-boundary issue: a backend that may keep old contents
 * (MADV_FREE).  The pre-zero pass must not write reported pages (that would
 * take them back from the OS while the stats still count them reported).
 */
static void prezero_leaves_lazily_freed_pages_alone(void)
{
	struct fake f = {0};
	struct zp_config c = {.size = (size_t)64 << 20, .prezero_bytes = (size_t)64 << 20};
	struct zp_arena *a = zp_arena_create(&c);
	struct zp_backend b = {"fake-lazy", fake_report, false, fake_now, &f, NULL};
	struct zp_stats s0, s1;
	void *p;

	ASSERT(a);
	zp_test_set_backend(a, &b);
	t_dirty(a, 10, 4);
	EXPECT_EQ(zp_arena_report(a), 4096);
	s0 = t_stats(a);
	EXPECT_EQ(s0.nr_free_reported, s0.nr_pages);
	EXPECT_EQ(zp_arena_prezero(a, 0), 0); /* every dirty page is given back: nothing to clear */
	s1 = t_stats(a);
	EXPECT(t_stats_equal(&s0, &s1));
	EXPECT_EQ(zp_arena_check(a), 0);
	/* a resident dirty block is cleared; the lazily freed ones still not */
	p = zp_alloc_pages(a, 0, 9, ZP_USER_ADDR_NONE);
	ASSERT(p);
	memset(p, 7, ZP_PAGE_SIZE << 9);
	zp_free_pages(a, p, 9);
	EXPECT_EQ(zp_arena_prezero(a, 0), 512);
	EXPECT_EQ(t_stats(a).nr_free_reported, s0.nr_pages - 512);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

static long smaps_kib(const char *field)
{
	FILE *f = fopen("/proc/self/smaps_rollup", "r");
	char line[256];
	size_t n = strlen(field);
	long kib = -1;

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, field, n) && line[n] == ':')
			kib = strtol(line + n + 1, NULL, 10);
	if (f)
		fclose(f);
	return kib;
}

/* The same with the real MADV_FREE backend and the background thread: the
 * kernel's LazyFree count stays where reporting left it. */
static void prezero_thread_keeps_madv_free_lazy(void)
{
	struct zp_config c = {.size = (size_t)128 << 20,
			      .flags = ZP_PREZERO | ZP_REPORT_MADV_FREE,
			      .prezero_bytes = (size_t)128 << 20};
	struct zp_arena *a;
	long lazy0, lazy1;

	if (smaps_kib("LazyFree") < 0)
		SKIP("/proc/self/smaps_rollup has no LazyFree field");
	a = zp_arena_create(&c);
	ASSERT(a);
	t_dirty(a, 10, 16); /* 64 MiB, resident and dirty */
	/* the thread may pre-zero some of it before the pass: report the rest */
	EXPECT(zp_arena_report(a) > 0);
	lazy0 = smaps_kib("LazyFree");
	usleep(200 * 1000); /* the thread, woken by frees, has had time to act */
	zp_test_kick(a);
	usleep(100 * 1000);
	lazy1 = smaps_kib("LazyFree");
	T_NOTE("MADV_FREE + ZP_PREZERO: LazyFree %ld -> %ld KiB", lazy0, lazy1);
	EXPECT(lazy0 >= 32 * 1024);
	EXPECT(lazy1 >= lazy0 - 1024);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/* Item 4: pre-zeroing splits a large dirty block and clears about its
 * target, not the whole block. */
static void prezero_splits_to_its_target(void)
{
	struct zp_config c = {.size = (size_t)64 << 20, .max_order = 14, .prezero_bytes = (size_t)4 << 20};
	struct zp_arena *a = zp_arena_create(&c);
	long n;

	ASSERT(a);
	t_dirty(a, 14, 1); /* one 64 MiB block */
	n = zp_arena_prezero(a, 0);
	EXPECT(n >= 1024 && n <= 2048);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);

	/* the background thread: at most its target plus one block of the size it needs */
	c.flags = ZP_PREZERO;
	a = zp_arena_create(&c);
	ASSERT(a);
	t_dirty(a, 14, 1);
	EXPECT(wait_for(a, st_prezeroed, 1024, 2000));
	usleep(100 * 1000);
	EXPECT(t_stats(a).pages_prezeroed <= 2048);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/* Item 4: the rate cap holds after every burst (fake clock: the pause ends
 * only when the test moves the clock). */
static void prezero_rate_cap_every_burst(void)
{
	struct fake f = {.now = 1000};
	struct zp_config c = {.size = (size_t)64 << 20, .flags = ZP_PREZERO, .prezero_bytes = (size_t)16 << 20};
	struct zp_backend b = {"fake", fake_report, true, fake_now, &f, NULL};
	struct zp_arena *a;

	setenv("ZPAGE_PREZERO_RATE_MB", "1", 1); /* 4 MiB bursts: 4 s pause each */
	a = zp_arena_create(&c);
	unsetenv("ZPAGE_PREZERO_RATE_MB");
	ASSERT(a);
	zp_test_set_backend(a, &b);
	t_dirty(a, 10, 8); /* 32 MiB dirty */
	EXPECT(wait_for(a, st_prezeroed, 1024, 2000));
	usleep(100 * 1000);
	EXPECT_EQ(t_stats(a).pages_prezeroed, 1024); /* one burst, then the pause */
	f.now = 1000 + 3900;
	zp_test_kick(a);
	usleep(100 * 1000);
	EXPECT_EQ(t_stats(a).pages_prezeroed, 1024);
	f.now = 1000 + 4100;
	zp_test_kick(a);
	EXPECT(wait_for(a, st_prezeroed, 2048, 2000));
	usleep(50 * 1000);
	EXPECT_EQ(t_stats(a).pages_prezeroed, 2048);
	zp_arena_destroy(a);
}

/* The quiet period (the drop-in's): no pre-zeroing while buddy allocations
 * and frees go on; PRELOAD's 20 ms (here 50, on the fake clock) after the
 * last of them, the thread clears. */
static void prezero_waits_for_a_quiet_period(void)
{
	struct fake f = {.now = 1000};
	struct zp_config c = {.size = (size_t)64 << 20, .flags = ZP_PREZERO, .prezero_bytes = (size_t)8 << 20};
	struct zp_backend b = {"fake", fake_report, true, fake_now, &f, NULL}; /* waits until kicked */
	struct zp_arena *a = zp_arena_create(&c);

	ASSERT(a);
	zp_test_set_backend(a, &b);
	zlock_lock(&a->lock);
	a->prezero_quiet_ms = 50;
	zlock_unlock(&a->lock);
	for (int i = 0; i < 5; i++) { /* activity, the fake clock 10 ms on each time */
		t_dirty(a, 10, 2);
		f.now += 10;
		usleep(20 * 1000);
	}
	EXPECT_EQ(t_stats(a).pages_prezeroed, 0);
	f.now += 35; /* the last activity was at f.now - 10: 45 ms after it */
	zp_test_kick(a);
	usleep(50 * 1000);
	EXPECT_EQ(t_stats(a).pages_prezeroed, 0);
	f.now += 10; /* 55 ms: one burst (4 MiB), then the rate cap's pause on the fake clock */
	zp_test_kick(a);
	EXPECT(wait_for(a, st_prezeroed, 1024, 2000));
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/* With a quiet period, an arena idle for a whole report delay gives its
 * pre-zero reserve back; a pass that came sooner (timed from the first
 * free) keeps it and comes back at last activity + delay. */
static uint64_t st_free_zeroed(const struct zp_stats *s)
{
	return s->nr_free_zeroed;
}

static void idle_arena_gives_its_reserve_back(void)
{
	struct fake f = {.now = 1000};
	struct zp_config c = {.size = (size_t)64 << 20,
			      .flags = ZP_PREZERO | ZP_REPORT,
			      .prezero_bytes = (size_t)4 << 20,
			      .report_delay_ms = 100};
	struct zp_backend b = {"fake", fake_report, true, fake_now, &f, NULL}; /* waits until kicked */
	struct zp_arena *a = zp_arena_create(&c);

	ASSERT(a);
	zp_test_set_backend(a, &b);
	zlock_lock(&a->lock);
	a->prezero_quiet_ms = 20;
	zlock_unlock(&a->lock);
	t_dirty(a, 10, 8); /* 32 MiB dirty, first free at 1000: a pass due a delay later */
	f.now = 1030;	   /* quiet: the thread pre-zeroes its 4 MiB reserve */
	zp_test_kick(a);
	ASSERT(wait_for(a, st_free_zeroed, 1024, 2000));
	f.now = 1080;
	t_dirty(a, 0, 1); /* activity at 1080 (a buddy allocation and free) */
	f.now = 1175;	  /* a delay after the first pass's wake-up: idle for 95 ms only */
	zp_test_kick(a);
	usleep(100 * 1000);
	EXPECT_GE(t_stats(a).nr_free_zeroed, 1024); /* the reserve stays */
	f.now = 1181; /* 101 ms after the last activity: the pass it scheduled */
	zp_test_kick(a);
	for (int i = 0; i < 2000 && t_stats(a).nr_free_zeroed >= 1024; i++)
		usleep(1000);
	EXPECT_LT(t_stats(a).nr_free_zeroed, 1024); /* the reserve's large blocks reported too */
	EXPECT_GE(t_stats(a).pages_reported, 1024);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/* After a burst's pause has ended and the target was met, memory used up
 * again wakes the thread again (a stale pause must not silence it). */
static void prezero_refills_after_a_pause(void)
{
	struct zp_config c = {.size = (size_t)64 << 20, .flags = ZP_PREZERO, .prezero_bytes = (size_t)8 << 20};
	struct zp_arena *a = zp_arena_create(&c);
	void *p[4];

	ASSERT(a);
	t_dirty(a, 10, 4);
	EXPECT(wait_for(a, st_prezeroed, 2048, 2000));
	usleep(50 * 1000); /* the last pause (~8 ms at 1 GiB/s) is over */
	for (int i = 0; i < 4; i++) {
		p[i] = zp_alloc_pages(a, ZP_GFP_ZERO, 9, ZP_USER_ADDR_NONE);
		ASSERT(p[i]);
		memset(p[i], 5, ZP_PAGE_SIZE << 9);
	}
	for (int i = 0; i < 4; i++)
		zp_free_pages(a, p[i], 9);
	EXPECT(wait_for(a, st_prezeroed, 4096, 2000));
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/* Item 4: destroy returns promptly while the thread pauses for a slow rate
 * cap after clearing part of a large dirty block. */
static void destroy_during_slow_prezero(void)
{
	struct zp_config c = {.size = (size_t)128 << 20,
			      .max_order = 14,
			      .flags = ZP_PREZERO,
			      .prezero_bytes = (size_t)64 << 20};
	struct zp_arena *a;
	double t0, ms;

	setenv("ZPAGE_PREZERO_RATE_MB", "16", 1);
	a = zp_arena_create(&c);
	unsetenv("ZPAGE_PREZERO_RATE_MB");
	ASSERT(a);
	t_dirty(a, 14, 1); /* 64 MiB dirty block */
	EXPECT(wait_for(a, st_prezeroed, 1, 2000));
	EXPECT(t_stats(a).pages_prezeroed <= 1024); /* one 4 MiB burst at a time */
	t0 = now_s();
	zp_arena_destroy(a);
	ms = (now_s() - t0) * 1e3;
	T_NOTE("destroy during a 16 MiB/s pre-zero pause: %.2f ms", ms);
	EXPECT(ms < 100);
}

/* Item 4: destroy interrupts a report pass between system calls. */
static void destroy_during_slow_report(void)
{
	struct fake f = {.delay_us = 20000};
	struct zp_config c = {.size = (size_t)64 << 20, .max_order = 9, .flags = ZP_REPORT, .report_delay_ms = 1};
	struct zp_backend b = {"slow", fake_report, true, real_now, &f, real_wait};
	struct zp_arena *a = zp_arena_create(&c);
	double t0, ms;

	ASSERT(a);
	zp_test_set_backend(a, &b);
	t_dirty(a, 9, 32); /* 32 order-9 blocks: 640 ms of system calls */
	for (int i = 0; i < 2000 && !f.attempts; i++)
		usleep(1000);
	EXPECT(f.attempts > 0);
	t0 = now_s();
	zp_arena_destroy(a);
	ms = (now_s() - t0) * 1e3;
	T_NOTE("destroy during a slow report pass: %.2f ms (%zu of 32 calls made)", ms, (size_t)f.attempts);
	EXPECT(ms < 100);
}

/* zp_arena_destroy() is not a cancellation point: a thread with a cancel
 * request pending destroys the arena while its thread is in the middle of a
 * slow pass (the join would act on the request and leave the arena mapped,
 * its thread running), and is cancelled at its next cancellation point. */
static _Atomic int destroyed;
static void *destroy_with_cancel_pending(void *arg)
{
	pthread_cancel(pthread_self());
	zp_arena_destroy(arg);
	destroyed = 1;
	pthread_testcancel();
	return NULL;
}

static void destroy_is_not_a_cancellation_point(void)
{
	struct fake f = {.delay_us = 20000};
	struct zp_config c = {.size = (size_t)64 << 20, .max_order = 9, .flags = ZP_REPORT, .report_delay_ms = 1};
	struct zp_backend b = {"slow", fake_report, true, real_now, &f, real_wait};
	struct zp_arena *a = zp_arena_create(&c);
	pthread_t t;
	void *ret = NULL;

	ASSERT(a);
	zp_test_set_backend(a, &b);
	t_dirty(a, 9, 32); /* 640 ms of system calls */
	for (int i = 0; i < 2000 && !f.attempts; i++)
		usleep(1000);
	ASSERT(f.attempts > 0);
	destroyed = 0;
	ASSERT_EQ(pthread_create(&t, NULL, destroy_with_cancel_pending, a), 0);
	ASSERT_EQ(pthread_join(t, &ret), 0);
	EXPECT(ret == PTHREAD_CANCELED); /* at pthread_testcancel(), after the destroy */
	EXPECT_EQ(destroyed, 1);
}

/* Item 7: a block whose system call fails (mlocked) does not stop the pass,
 * however many batches of blocks follow it. */
static void report_goes_on_past_a_failed_block(void)
{
	struct fake f = {.fail_first = true};
	struct zp_config c = {.size = (size_t)256 << 20, .max_order = 9, .flags = ZP_NOHUGEPAGE};
	struct zp_backend b = {"fake", fake_report, true, fake_now, &f, NULL};
	struct zp_arena *a = zp_arena_create(&c);

	ASSERT(a);
	zp_test_set_backend(a, &b);
	t_dirty(a, 9, 128); /* two batches of 64 blocks */
	EXPECT_EQ(zp_arena_report(a), 127 * 512); /* all but the bad one */
	EXPECT_EQ(zp_arena_report(a), -EINVAL);	  /* only the bad one is left */
	EXPECT_EQ(t_stats(a).nr_free_reported, 128 * 512 - 512);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/* The same with the real backend and a real mlocked page: the kernel
 * refuses MADV_DONTNEED on it (EINVAL), the pass reports every other
 * block, the locked page keeps its contents, a zeroing allocation of the
 * failed block still reads zero (part of it may have been dropped before
 * the refusal: dirty only says "may be non-zero"), and once unlocked the
 * block is reported like the rest. */
static void report_goes_on_past_an_mlocked_page(void)
{
	struct zp_config c = {.size = (size_t)16 << 20, .max_order = 9};
	struct zp_arena *a;
	long pg = sysconf(_SC_PAGESIZE), rc, lck;
	char *p[8], *probe, *locked;

	/* may we lock a page, does mlock() lock it (the sanitizers' does
	 * nothing), and does the kernel then refuse to drop it? */
	probe = mmap(NULL, (size_t)pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT(probe != MAP_FAILED);
	probe[0] = 1;
	lck = t_status_kib("VmLck");
	if (mlock(probe, (size_t)pg)) {
		int e = errno;

		munmap(probe, (size_t)pg);
		SKIP("mlock of one page failed (%s): RLIMIT_MEMLOCK?", strerror(e));
	}
	if (t_status_kib("VmLck") <= lck) {
		munmap(probe, (size_t)pg);
		SKIP("mlock() returned 0 but VmLck did not grow (ASan and TSan make mlock a no-op)");
	}
	rc = madvise(probe, (size_t)pg, MADV_DONTNEED);
	munmap(probe, (size_t)pg);
	if (!rc)
		SKIP("this kernel drops an mlocked page on MADV_DONTNEED instead of refusing");

	a = zp_arena_create(&c);
	ASSERT(a);
	for (int i = 0; i < 8; i++) {
		p[i] = zp_alloc_pages(a, 0, 9, ZP_USER_ADDR_NONE);
		ASSERT(p[i]);
		memset(p[i], 0x3c, ZP_PAGE_SIZE << 9);
	}
	locked = p[3] + (ZP_PAGE_SIZE << 8); /* the middle of a block */
	ASSERT_EQ(mlock(locked, ZP_PAGE_SIZE), 0);
	for (int i = 0; i < 8; i++)
		zp_free_pages(a, p[i], 9);

	EXPECT_EQ(zp_arena_report(a), 7 * 512); /* all but the locked block */
	EXPECT_EQ(zp_arena_report(a), -EINVAL); /* only it is left */
	EXPECT_EQ(t_stats(a).nr_free_reported, 7 * 512);
	EXPECT_EQ(locked[0], 0x3c);
	EXPECT_EQ(locked[ZP_PAGE_SIZE - 1], 0x3c);
	EXPECT_EQ(zp_arena_check(a), 0);

	/* every block, the locked one included, comes out zeroed */
	for (int i = 0; i < 8; i++) {
		p[i] = zp_alloc_pages(a, ZP_GFP_ZERO, 9, ZP_USER_ADDR_NONE);
		ASSERT(p[i]);
		EXPECT(t_all_zero(p[i], ZP_PAGE_SIZE << 9));
	}
	EXPECT_EQ(zp_alloc_pages(a, 0, 0, ZP_USER_ADDR_NONE), NULL);
	EXPECT_EQ(t_stats(a).pages_cleared, 512); /* only the block that could not be reported */

	ASSERT_EQ(munlock(locked, ZP_PAGE_SIZE), 0);
	for (int i = 0; i < 8; i++)
		zp_free_pages(a, p[i], 9);
	EXPECT_EQ(zp_arena_report(a), 8 * 512);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/* Item 7: SIZE_MAX means "as much as there is", not 0. */
static void prezero_size_max(void)
{
	struct zp_config c = {.size = (size_t)16 << 20};
	struct zp_arena *a = zp_arena_create(&c);

	ASSERT(a);
	t_dirty(a, 10, 2);
	EXPECT_EQ(zp_arena_prezero(a, SIZE_MAX), 2048);
	EXPECT_EQ(zp_arena_prezero(a, SIZE_MAX), 0);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/* Item 7: with report_order <= 3, freed small blocks must be reportable,
 * not parked in a per-CPU cache. */
static void small_report_order_reports_cached_orders(void)
{
	struct fake f = {0};
	struct zp_config c = {.size = (size_t)4 << 20, .max_order = 10, .report_order = 2};
	struct zp_backend b = {"fake", fake_report, true, fake_now, &f, NULL};
	struct zp_arena *a = zp_arena_create(&c);
	void *p[8];

	ASSERT(a);
	zp_test_set_backend(a, &b);
	for (int i = 0; i < 8; i++) {
		p[i] = zp_alloc_pages(a, 0, (unsigned)(2 + (i & 1)), ZP_USER_ADDR_NONE);
		ASSERT(p[i]);
		memset(p[i], 1, ZP_PAGE_SIZE << (2 + (i & 1)));
	}
	for (int i = 0; i < 8; i++)
		zp_free_pages(a, p[i], (unsigned)(2 + (i & 1)));
	EXPECT_EQ(zp_arena_report(a), 4 * 4 + 4 * 8);
	EXPECT_EQ(t_stats(a).nr_free_reported, t_stats(a).nr_pages);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/* Item 7: the stats snapshot is exact: a pass counts the pages it reported
 * as it puts them back, so nr_free_reported and pages_reported agree even
 * in the middle of a pass. */
static struct zp_arena *exact_arena;
static void *report_thread(void *arg)
{
	(void)arg;
	zp_arena_report(exact_arena);
	return NULL;
}

static void stats_exact_during_a_pass(void)
{
	struct fake f = {.hold_at = 65}; /* the first call of the second batch */
	struct zp_config c = {.size = (size_t)256 << 20, .max_order = 9, .flags = ZP_NOHUGEPAGE};
	struct zp_backend b = {"fake", fake_report, true, fake_now, &f, NULL};
	void *p[128];
	pthread_t t;
	struct zp_stats st;

	exact_arena = zp_arena_create(&c);
	ASSERT(exact_arena);
	zp_test_set_backend(exact_arena, &b);
	for (int i = 0; i < 128; i++) {
		p[i] = zp_alloc_pages(exact_arena, 0, 9, ZP_USER_ADDR_NONE);
		ASSERT(p[i]);
		memset(p[i], 1, 64);
	}
	for (int i = 0; i < 128; i++)
		zp_free_pages(exact_arena, p[i], 9);
	pthread_create(&t, NULL, report_thread, NULL);
	for (int i = 0; i < 2000 && !f.held; i++)
		usleep(1000);
	EXPECT(f.held);
	st = t_stats(exact_arena);
	EXPECT_EQ(st.nr_free_reported, 64 * 512); /* the first batch is back */
	EXPECT_EQ(st.pages_reported, st.nr_free_reported);
	f.release = 1;
	pthread_join(t, NULL);
	st = t_stats(exact_arena);
	EXPECT_EQ(st.pages_reported, 128 * 512);
	EXPECT_EQ(st.nr_free_reported, 128 * 512);
	zp_arena_destroy(exact_arena);
}

/* The reserve holds when its zeroed pages sit inside a larger dirty block:
 * pre-zeroing split a block and cleared part of it, and put back it merged
 * with its dirty buddy.  Reporting hands back only the dirty runs. */
static void report_keeps_reserve_inside_a_block(void)
{
	struct fake f = {0};
	struct zp_config c = {.size = (size_t)16 << 20, .max_order = 10, .prezero_bytes = (size_t)2 << 20};
	struct zp_backend b = {"fake", fake_report, true, fake_now, &f, NULL};
	struct zp_arena *a = zp_arena_create(&c);

	ASSERT(a);
	zp_test_set_backend(a, &b);
	t_dirty(a, 10, 4);
	EXPECT_EQ(zp_arena_prezero(a, 0), 512);
	EXPECT_EQ(t_stats(a).nr_free_zeroed, 512);
	EXPECT_EQ(zp_arena_report(a), 4096 - 512);
	EXPECT_EQ(t_stats(a).nr_free_zeroed, 512);
	EXPECT_EQ(t_stats(a).nr_free_reported, 4096 - 512);
	EXPECT_EQ(zp_arena_report(a), 0);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/* A block that keeps its reserve pages is reported run by run; when a
 * later run fails, the runs before it stay reported (their bits say so)
 * and the block, like any failed one, is not tried again in that pass.
 * Block 0 is laid out dirty [0, 256), zeroed [256, 512) (the reserve),
 * dirty [512, 1024), and its second run fails. */
static void report_skips_a_block_whose_later_run_failed(void)
{
	struct fake f = {0};
	struct zp_config c = {.size = (size_t)16 << 20, .max_order = 10, .prezero_bytes = (size_t)1 << 20};
	struct zp_backend b = {"fake", fake_report, true, fake_now, &f, NULL};
	struct zp_arena *a = zp_arena_create(&c);
	char *p[16];

	ASSERT(a);
	zp_test_set_backend(a, &b);
	for (int i = 0; i < 16; i++) { /* the whole arena in order-8 pieces, written */
		p[i] = zp_alloc_pages(a, 0, 8, ZP_USER_ADDR_NONE);
		ASSERT(p[i]);
		memset(p[i], 0x3c, ZP_PAGE_SIZE << 8);
	}
	char *base = p[0];
	for (int i = 1; i < 16; i++)
		if (p[i] < base)
			base = p[i];
	for (int i = 0; i < 16; i++)
		if (p[i] == base + (ZP_PAGE_SIZE << 8))
			zp_free_pages(a, p[i], 8);
	zp_test_drain_pcp(a); /* onto the buddy lists, where pre-zeroing looks */
	EXPECT_EQ(zp_arena_prezero(a, 0), 256); /* the only free block: [256, 512) of block 0 */
	for (int i = 0; i < 16; i++)
		if (p[i] != base + (ZP_PAGE_SIZE << 8))
			zp_free_pages(a, p[i], 8);
	zp_test_drain_pcp(a);
	EXPECT_EQ(t_stats(a).nr_free_zeroed, 256);
	f.bad = (uintptr_t)(base + (ZP_PAGE_SIZE << 9));

	EXPECT_EQ(zp_arena_report(a), 256 + 3 * 1024); /* block 0's first run and the other blocks */
	EXPECT_EQ(f.bad_calls, 1);			/* its second run was tried once */
	EXPECT_EQ(t_stats(a).nr_free_reported, 256 + 3 * 1024);
	EXPECT_EQ(t_stats(a).nr_free_zeroed, 256); /* the reserve kept */
	EXPECT_EQ(zp_arena_check(a), 0);
	EXPECT_EQ(zp_arena_report(a), -EINVAL); /* only that run is left */
	EXPECT_EQ(f.bad_calls, 2);
	f.bad = 0;
	EXPECT_EQ(zp_arena_report(a), 512);
	EXPECT_EQ(t_stats(a).nr_free_reported, 4096 - 256);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/* A block whose system call keeps failing (mlocked) does not bring the
 * background thread back every report_delay_ms. */
static void failing_block_does_not_make_the_thread_poll(void)
{
	struct fake f = {.fail_first = true};
	struct zp_config c = {.size = (size_t)16 << 20, .max_order = 10, .flags = ZP_REPORT, .report_delay_ms = 10};
	struct zp_backend b = {"fake", fake_report, true, real_now, &f, real_wait};
	struct zp_arena *a = zp_arena_create(&c);
	size_t calls;

	ASSERT(a);
	zp_test_set_backend(a, &b);
	t_dirty(a, 10, 2);
	for (int i = 0; i < 2000 && t_stats(a).pages_reported < 1024; i++)
		usleep(1000);
	EXPECT_EQ(t_stats(a).pages_reported, 1024); /* the other block */
	calls = f.attempts;
	usleep(300 * 1000); /* 30 report delays */
	T_NOTE("failing block: %zu report calls in the 300 ms after the pass", (size_t)f.attempts - calls);
	EXPECT_LE(f.attempts - calls, 1);
	zp_arena_destroy(a);
}

/* A thread cancelled while it waits in zp_alloc_pages() for a pass to put
 * blocks back must not take the arena lock with it.  In a child, so that a
 * hang is a failure, not the end of the test run. */
static struct zp_arena *cancel_arena;
static struct fake cancel_fake = {.hold_at = 1};

static void *cancel_report(void *arg)
{
	(void)arg;
	zp_arena_report(cancel_arena);
	return NULL;
}

static void *cancel_waiter(void *arg)
{
	void *p;

	(void)arg;
	p = zp_alloc_pages(cancel_arena, 0, 0, ZP_USER_ADDR_NONE); /* waits: the pass holds every page */
	pthread_testcancel();
	return p;
}

static void cancelled_waiter_leaves_no_lock(void)
{
	struct zp_config c = {.size = 1024 * ZP_PAGE_SIZE, .max_order = 10};
	struct zp_backend b = {"fake", fake_report, true, fake_now, &cancel_fake, NULL};
	int st = 0;
	pid_t pid = fork();

	if (pid == 0) {
		pthread_t r, w;
		void *p;

		alarm(10);
		cancel_arena = zp_arena_create(&c);
		if (!cancel_arena)
			_exit(2);
		zp_test_set_backend(cancel_arena, &b);
		t_dirty(cancel_arena, 10, 1);
		pthread_create(&r, NULL, cancel_report, NULL);
		while (!cancel_fake.held)
			usleep(1000);
		pthread_create(&w, NULL, cancel_waiter, NULL);
		usleep(50 * 1000); /* the waiter is in the slow path, waiting */
		pthread_cancel(w);
		usleep(20 * 1000);
		cancel_fake.release = 1;
		pthread_join(r, NULL); /* the pass can put its block back */
		pthread_join(w, NULL);
		p = zp_alloc_pages(cancel_arena, 0, 0, ZP_USER_ADDR_NONE);
		if (!p || zp_arena_check(cancel_arena))
			_exit(3);
		_exit(0);
	}
	ASSERT(pid > 0);
	st = t_wait_child(pid);
	EXPECT_EQ(st, 0);
}

int main(int argc, char **argv)
{
	t_init(argc, argv);
	RUN(report_pass_with_fake_backend);
	RUN(small_blocks_never_reported);
	RUN(madv_free_style_backend_leaves_pages_dirty);
	RUN(failing_backend);
	RUN(background_waits_for_the_delay);
	RUN(real_backend_returns_memory);
	RUN(prezero_pass);
	RUN(concurrent_report_and_prezero);
	RUN(background_prezero_without_polling);
	RUN(report_keeps_prezero_reserve);
	RUN(environment_overrides);
	RUN(report_keeps_reserve_inside_a_block);
	RUN(report_skips_a_block_whose_later_run_failed);
	RUN(failing_block_does_not_make_the_thread_poll);
	RUN(cancelled_waiter_leaves_no_lock);
	RUN(prezero_leaves_lazily_freed_pages_alone);
	RUN(prezero_thread_keeps_madv_free_lazy);
	RUN(prezero_splits_to_its_target);
	RUN(prezero_rate_cap_every_burst);
	RUN(prezero_refills_after_a_pause);
	RUN(prezero_waits_for_a_quiet_period);
	RUN(idle_arena_gives_its_reserve_back);
	RUN(destroy_during_slow_prezero);
	RUN(destroy_during_slow_report);
	RUN(destroy_is_not_a_cancellation_point);
	RUN(report_goes_on_past_a_failed_block);
	RUN(report_goes_on_past_an_mlocked_page);
	RUN(prezero_size_max);
	RUN(small_report_order_reports_cached_orders);
	RUN(stats_exact_during_a_pass);
	return t_done("test_report");
}
