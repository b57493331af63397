/* SPDX-License-Identifier: MIT */
/*
 * Bad input and exhaustion.  Every refused call must return its error and
 * change nothing: the stats are identical and zp_arena_check() passes after
 * each one, and the arena stays fully usable.
 */
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include "test.h"

static int same_stats(const struct zp_stats *x, const struct zp_stats *y)
{
	return t_stats_equal(x, y);
}

static void bad_configs(void)
{
	struct zp_config c;

#define EXPECT_CREATE_FAILS(err, ...)                                                                                  \
	do {                                                                                                           \
		c = (struct zp_config){__VA_ARGS__};                                                                   \
		errno = 0;                                                                                             \
		EXPECT(zp_arena_create(&c) == NULL && errno == err);                                                   \
	} while (0)
	EXPECT_CREATE_FAILS(EINVAL, .size = 4096 * 10 + 1);
	EXPECT_CREATE_FAILS(EINVAL, .size = 100);
	EXPECT_CREATE_FAILS(EINVAL, .max_order = ZP_MAX_ORDER_LIMIT + 1);
	EXPECT_CREATE_FAILS(EINVAL, .max_order = 4, .report_order = 5);
	EXPECT_CREATE_FAILS(EINVAL, .flags = 0x100);
	EXPECT_CREATE_FAILS(EINVAL, .size = (size_t)1 << 44); /* 2^32 pages */
#undef EXPECT_CREATE_FAILS

	/* defaults, and the largest legal order */
	struct zp_arena *a = zp_arena_create(NULL);
	ASSERT(a);
	EXPECT_EQ(t_stats(a).nr_pages, (1u << 30) / ZP_PAGE_SIZE);
	zp_arena_destroy(a);
	c = (struct zp_config){.size = 64 * ZP_PAGE_SIZE, .max_order = ZP_MAX_ORDER_LIMIT};
	a = zp_arena_create(&c);
	ASSERT(a);
	EXPECT(zp_alloc_pages(a, 0, 6, ZP_USER_ADDR_NONE) != NULL);
	EXPECT(zp_alloc_pages(a, 0, 7, ZP_USER_ADDR_NONE) == NULL && errno == ENOMEM);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
	zp_arena_destroy(NULL);
}

static void bad_allocations(void)
{
	struct zp_arena *a = t_arena(64, 4, 0);
	struct zp_stats s0 = t_stats(a), s1;

	errno = 0;
	EXPECT(zp_alloc_pages(a, 0, 5, ZP_USER_ADDR_NONE) == NULL && errno == EINVAL);
	errno = 0;
	EXPECT(zp_alloc_pages(a, 0, 1000, ZP_USER_ADDR_NONE) == NULL && errno == EINVAL);
	errno = 0;
	EXPECT(zp_alloc_pages(a, 0x80, 0, ZP_USER_ADDR_NONE) == NULL && errno == EINVAL);
	errno = 0;
	EXPECT(zp_alloc_pages(NULL, 0, 0, ZP_USER_ADDR_NONE) == NULL && errno == EINVAL);
	s1 = t_stats(a);
	EXPECT(same_stats(&s0, &s1));
	EXPECT_EQ(zp_arena_check(a), 0);
	EXPECT_EQ(zp_arena_check(NULL), -EINVAL);
	EXPECT_EQ(zp_arena_report(NULL), -EINVAL);
	EXPECT_EQ(zp_arena_prezero(NULL, 0), -EINVAL);
	{
		struct zp_stats z;

		memset(&z, 0x5a, sizeof(z));
		zp_arena_stats(NULL, &z); /* a NULL arena: every counter 0 */
		EXPECT_EQ(z.nr_free, 0);
		EXPECT_EQ(z.nr_pages, 0);
		EXPECT_EQ(z.pages_cleared, 0);
		EXPECT_EQ(z.report_zeroes, 0);
	}
	zp_arena_destroy(a);
}

static void bad_frees(void)
{
	struct zp_arena *a = t_arena(64, 4, 0);
	char *p2 = zp_alloc_pages(a, ZP_GFP_ZERO, 2, ZP_USER_ADDR_NONE);
	char *p4 = zp_alloc_pages(a, 0, 4, ZP_USER_ADDR_NONE);
	char *p0 = zp_alloc_pages(a, 0, 0, ZP_USER_ADDR_NONE);
	char *gone = zp_alloc_pages(a, 0, 0, ZP_USER_ADDR_NONE);
	int local;
	struct zp_stats s0, s1;

	ASSERT(p2 && p4 && p0 && gone);
	ASSERT_EQ(zp_free_pages(a, gone, 0), 0);
	s0 = t_stats(a);

	struct {
		const char *what;
		struct zp_arena *arena;
		void *addr;
		unsigned order;
	} bad[] = {
		{"NULL arena", NULL, p2, 2},
		{"NULL pointer", a, NULL, 0},
		{"stack pointer", a, &local, 0},
		{"just below the arena", a, a->base - ZP_PAGE_SIZE, 0},
		{"just past the arena", a, a->base + 64 * ZP_PAGE_SIZE, 0},
		{"misaligned inside a page", a, p2 + 8, 2},
		{"misaligned for the order", a, p2 + ZP_PAGE_SIZE, 1},
		{"tail page as order 0", a, p2 + ZP_PAGE_SIZE, 0},
		{"tail page of order 4, aligned for order 2", a, p4 + 4 * ZP_PAGE_SIZE, 2},
		{"wrong order (smaller)", a, p2, 1},
		{"wrong order (larger)", a, p2, 3},
		{"order above max_order", a, p4, 5},
		{"order way above", a, p4, 4000},
		{"double free", a, gone, 0},
		{"never allocated", a, a->base + 63 * ZP_PAGE_SIZE, 0},
		{"top of the address space", a, (void *)(uintptr_t)-(ZP_PAGE_SIZE << 4), 4},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = zp_free_pages(bad[i].arena, bad[i].addr, bad[i].order);

		if (rc != -EINVAL)
			T_REPORT("%s: returned %d", bad[i].what, rc);
		s1 = t_stats(a);
		if (!same_stats(&s0, &s1))
			T_REPORT("%s: stats changed", bad[i].what);
		if (zp_arena_check(a))
			T_REPORT("%s: arena check failed", bad[i].what);
	}
	/* the live blocks are still live and intact */
	EXPECT(t_all_zero(p2, 4 * ZP_PAGE_SIZE));
	EXPECT_EQ(zp_free_pages(a, p2, 2), 0);
	EXPECT_EQ(zp_free_pages(a, p2, 2), -EINVAL);
	EXPECT_EQ(zp_free_pages(a, p4, 4), 0);
	EXPECT_EQ(zp_free_pages(a, p0, 0), 0);
	EXPECT_EQ(t_stats(a).nr_free, 64);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);

	/* an arena of 13 pages: aligned blocks that would run past its end */
	a = t_arena(13, 3, 0);
	ASSERT((p2 = zp_alloc_pages(a, 0, 2, ZP_USER_ADDR_NONE)));
	s0 = t_stats(a);
	EXPECT_EQ(zp_free_pages(a, a->base + 8 * ZP_PAGE_SIZE, 3), -EINVAL);
	EXPECT_EQ(zp_free_pages(a, a->base + 12 * ZP_PAGE_SIZE, 2), -EINVAL);
	EXPECT_EQ(zp_free_pages(a, a->base + 12 * ZP_PAGE_SIZE, 1), -EINVAL);
	s1 = t_stats(a);
	EXPECT(same_stats(&s0, &s1));
	EXPECT_EQ(zp_arena_check(a), 0);
	EXPECT_EQ(zp_free_pages(a, p2, 2), 0);
	zp_arena_destroy(a);
}

/* Exhaust the arena page by page: ENOMEM, nothing corrupted, and after
 * freeing everything, every page is obtainable as the largest blocks. */
static void exhaustion(void)
{
	struct zp_arena *a = t_arena(64, 4, 0);
	void *p[64];
	size_t n = 0;

	while (n < 64 && (p[n] = zp_alloc_pages(a, n & 1 ? ZP_GFP_ZERO : 0, 0, ZP_USER_ADDR_NONE)))
		n++;
	EXPECT_EQ(n, 64);
	for (unsigned o = 0; o <= 4; o++) {
		errno = 0;
		EXPECT(zp_alloc_pages(a, ZP_GFP_ZERO, o, ZP_USER_ADDR_NONE) == NULL && errno == ENOMEM);
	}
	EXPECT_EQ(zp_arena_check(a), 0);
	EXPECT_EQ(t_stats(a).nr_free, 0);
	for (size_t i = 0; i < n; i++)
		EXPECT_EQ(zp_free_pages(a, p[i], 0), 0);
	EXPECT_EQ(t_stats(a).nr_free, 64); /* many sit in this thread's cache */
	for (int i = 0; i < 4; i++)
		EXPECT((p[i] = zp_alloc_pages(a, ZP_GFP_ZERO, 4, ZP_USER_ADDR_NONE)) != NULL);
	EXPECT(zp_alloc_pages(a, 0, 0, ZP_USER_ADDR_NONE) == NULL && errno == ENOMEM);
	for (int i = 0; i < 4; i++)
		EXPECT(p[i] && t_all_zero(p[i], 16 * ZP_PAGE_SIZE));
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/* Pages freed by a thread pinned to another CPU (its cache goes back when
 * it exits) can be allocated, as a whole, here. */
struct cpu_arg {
	struct zp_arena *a;
	int cpu;
	void *p[32];
};

static void *on_cpu(void *arg)
{
	struct cpu_arg *c = arg;
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(c->cpu, &set);
	if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set))
		return (void *)1;
	for (int i = 0; i < 32; i++)
		if (c->p[i] && zp_free_pages(c->a, c->p[i], 0))
			return (void *)2;
	return NULL;
}

static void caches_drained_before_failing(void)
{
	struct zp_arena *a = t_arena(32, 5, 0);
	struct cpu_arg c = {.a = a, .cpu = 1};
	pthread_t t;
	void *ret;
	char *big;

	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		SKIP("needs 2 CPUs");
	for (int i = 0; i < 32; i++)
		ASSERT((c.p[i] = zp_alloc_pages(a, 0, 0, ZP_USER_ADDR_NONE)));
	ASSERT_EQ(pthread_create(&t, NULL, on_cpu, &c), 0);
	pthread_join(t, &ret);
	ASSERT(ret == NULL);
	/* all 32 pages were freed on CPU 1; allocate the whole arena here */
	c.cpu = 0;
	big = zp_alloc_pages(a, ZP_GFP_ZERO, 5, ZP_USER_ADDR_NONE);
	EXPECT(big != NULL);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/*
 * Every page can be obtained under concurrency: thread B, pinned to CPU 1,
 * allocates and frees one page at a time (holding at most one, but
 * refilling its CPU's cache from the buddy lists each time it is empty);
 * the main thread, pinned to CPU 0, allocates every page it can.  It must
 * get every page but B's one, every round.
 */
static _Atomic int churn_stop;

static int pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static void *one_page_churn(void *arg)
{
	struct zp_arena *a = arg;

	if (pin(1))
		return (void *)2;
	while (!churn_stop) {
		void *p = zp_alloc_pages(a, 0, 0, ZP_USER_ADDR_NONE);

		if (p && zp_free_pages(a, p, 0))
			return (void *)1;
	}
	return NULL;
}

static void every_page_under_concurrency(void)
{
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
	const int rounds = 2000;
#else
	const int rounds = 20000;
#endif
	struct zp_arena *a = t_arena(256, 8, 0);
	static void *p[256];
	int short_rounds = 0, worst = 256;
	pthread_t t;
	void *ret;

	if (sysconf(_SC_NPROCESSORS_ONLN) < 2 || pin(0)) {
		zp_arena_destroy(a);
		SKIP("needs CPUs 0 and 1 to pin one thread on each");
	}
	churn_stop = 0;
	ASSERT_EQ(pthread_create(&t, NULL, one_page_churn, a), 0);
	for (int r = 0; r < rounds; r++) {
		int n = 0;

		while (n < 256 && (p[n] = zp_alloc_pages(a, 0, 0, ZP_USER_ADDR_NONE)))
			n++;
		if (n < 255)
			short_rounds++;
		if (n < worst)
			worst = n;
		for (int i = 0; i < n; i++)
			zp_free_pages(a, p[i], 0);
	}
	churn_stop = 1;
	pthread_join(t, &ret);
	EXPECT(ret == NULL);
	EXPECT_EQ(short_rounds, 0);
	if (short_rounds)
		T_DIAG("%d of %d rounds got fewer than 255 pages (worst %d)", short_rounds, rounds, worst);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

int main(int argc, char **argv)
{
	t_init(argc, argv);
	RUN(bad_configs);
	RUN(bad_allocations);
	RUN(bad_frees);
	RUN(exhaustion);
	RUN(caches_drained_before_failing);
	RUN(every_page_under_concurrency);
	return t_done("test_errors");
}
