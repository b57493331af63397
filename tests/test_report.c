/* SPDX-License-Identifier: MIT */
/*
 * Returning memory to the OS and pre-zeroing: a fake backend and clock for
 * the policy, the real madvise backend for resident memory, and threads
 * allocating and freeing while both passes run.
 */
#include <pthread.h>
#include <unistd.h>

#include "test.h"

struct fake {
	_Atomic uint64_t now;
	_Atomic size_t calls, bytes;
	_Atomic size_t min_len;
	int fail; /* -errno to return, or 0 */
};

static int fake_report(void *ctx, void *addr, size_t len)
{
	struct fake *f = ctx;

	(void)addr;
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

/* Allocate @n blocks of @order, write them, free them: dirty free memory. */
static void dirty(struct zp_arena *a, unsigned order, int n)
{
	void *p[64];

	for (int i = 0; i < n; i++) {
		p[i] = zp_alloc_pages(a, 0, order, ZP_USER_ADDR_NONE);
		if (!p[i])
			abort();
		memset(p[i], 0x3c, ZP_PAGE_SIZE << order);
	}
	for (int i = 0; i < n; i++)
		zp_free_pages(a, p[i], order);
}

static void report_pass_with_fake_backend(void)
{
	struct fake f = {0};
	struct zp_arena *a = fake_arena(&f, 0, true, 0);
	char *p;

	EXPECT_EQ(zp_arena_report(a), 0); /* fresh memory is reported already */
	EXPECT_EQ(f.calls, 0);
	dirty(a, 9, 4); /* 2048 dirty pages, merged into order-10 blocks */
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
	struct zp_arena *a = fake_arena(&f, 0, false, 0);
	char *p;

	dirty(a, 10, 1);
	EXPECT_EQ(zp_arena_report(a), 1024);
	EXPECT_EQ(t_stats(a).report_zeroes, 0);
	EXPECT_EQ(t_stats(a).nr_free_reported, 64 * 512);
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

	dirty(a, 10, 2);
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

	dirty(a, 10, 3);
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

static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
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
	dirty(a, 10, 24); /* 96 MiB resident */
	before = rss_kib();
	reported = zp_arena_report(a);
	after = rss_kib();
	EXPECT_EQ(reported, 24 * 1024);
	printf("real backend: VmRSS %ld -> %ld KiB after reporting %ld KiB\n", before, after, reported * 4);
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
	dirty(a, 10, 4); /* 16 MiB dirty */
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

static uint64_t sleeps(struct zp_arena *a)
{
	uint64_t n;

	pthread_mutex_lock(&a->lock);
	n = a->daemon_sleeps;
	pthread_mutex_unlock(&a->lock);
	return n;
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
	s0 = sleeps(a);
	usleep(300 * 1000); /* idle: fresh memory, nothing dirty, nothing to report */
	EXPECT(sleeps(a) - s0 <= 1);
	dirty(a, 10, 4); /* 16 MiB dirty: below the 8 MiB zeroed target */
	for (int i = 0; i < 300 && t_stats(a).nr_free_zeroed < 2048; i++)
		usleep(10 * 1000);
	EXPECT(t_stats(a).nr_free_zeroed >= 2048);
	EXPECT(t_stats(a).pages_prezeroed >= 2048);
	usleep(50 * 1000);
	s0 = sleeps(a);
	usleep(300 * 1000); /* target met: asleep again (waiting for the report time) */
	EXPECT(sleeps(a) - s0 <= 1);
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
	dirty(a, 10, 4);
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
	fprintf(stderr, "(a message about ignoring ZPAGE_REPORT_DELAY_MS=soon is expected here)\n");
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

int main(void)
{
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
	return t_done("test_report");
}
