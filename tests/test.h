/* SPDX-License-Identifier: MIT */
/*
 * A minimal test harness.  EXPECT_* records a failure and goes on;
 * ASSERT_* records it and leaves the test.  Each binary ends with
 * "<name>: N passed, N failed, N skipped" and exits non-zero on failure.
 */
#ifndef ZPAGE_TEST_H
#define ZPAGE_TEST_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "zpage.h"

static int t_passed, t_failed, t_skipped, t_cur_failed, t_cur_skipped;
static const char *t_cur;

#define T_REPORT(...)                                                                                                  \
	do {                                                                                                           \
		fprintf(stderr, "%s:%d: %s: ", __FILE__, __LINE__, t_cur);                                             \
		fprintf(stderr, __VA_ARGS__);                                                                          \
		fputc('\n', stderr);                                                                                   \
		t_cur_failed++;                                                                                        \
	} while (0)

#define EXPECT(c)                                                                                                      \
	do {                                                                                                           \
		if (!(c))                                                                                              \
			T_REPORT("expected %s", #c);                                                                   \
	} while (0)
#define ASSERT(c)                                                                                                      \
	do {                                                                                                           \
		if (!(c)) {                                                                                            \
			T_REPORT("assert %s", #c);                                                                     \
			return;                                                                                        \
		}                                                                                                      \
	} while (0)
#define EXPECT_EQ(x, y)                                                                                                \
	do {                                                                                                           \
		long long _x = (long long)(x), _y = (long long)(y);                                                    \
		if (_x != _y)                                                                                          \
			T_REPORT("expected %s == %s, got %lld and %lld", #x, #y, _x, _y);                              \
	} while (0)
#define ASSERT_EQ(x, y)                                                                                                \
	do {                                                                                                           \
		long long _x = (long long)(x), _y = (long long)(y);                                                    \
		if (_x != _y) {                                                                                        \
			T_REPORT("assert %s == %s, got %lld and %lld", #x, #y, _x, _y);                                \
			return;                                                                                        \
		}                                                                                                      \
	} while (0)
#define SKIP(...)                                                                                                      \
	do {                                                                                                           \
		printf("skip %s: ", t_cur);                                                                            \
		printf(__VA_ARGS__);                                                                                   \
		putchar('\n');                                                                                         \
		t_cur_skipped = 1;                                                                                     \
		return;                                                                                                \
	} while (0)

#define RUN(fn) t_run(#fn, fn)

static inline void t_run(const char *name, void (*fn)(void))
{
	t_cur = name;
	t_cur_failed = t_cur_skipped = 0;
	fn();
	if (t_cur_failed) {
		t_failed++;
		printf("FAIL %s\n", name);
	} else if (t_cur_skipped) {
		t_skipped++;
	} else {
		t_passed++;
		printf("ok   %s\n", name);
	}
	fflush(stdout);
}

static inline int t_done(const char *prog)
{
	printf("%s: %d passed, %d failed, %d skipped\n", prog, t_passed, t_failed, t_skipped);
	return t_failed ? 1 : 0;
}

/* Helpers shared by the suites. */
static inline struct zp_arena *t_arena(size_t pages, unsigned max_order, unsigned flags)
{
	struct zp_config c = {.size = pages * ZP_PAGE_SIZE, .max_order = max_order, .flags = flags};
	struct zp_arena *a = zp_arena_create(&c);

	if (!a) {
		fprintf(stderr, "zp_arena_create: %s\n", strerror(errno));
		abort();
	}
	return a;
}

static inline size_t t_pfn(struct zp_arena *a, const void *p)
{
	return (size_t)((const char *)p - a->base) >> ZP_PAGE_SHIFT;
}

static inline int t_all_zero(const void *p, size_t len)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < len; i++)
		if (c[i])
			return 0;
	return 1;
}

static inline struct zp_stats t_stats(struct zp_arena *a)
{
	struct zp_stats s;

	zp_arena_stats(a, &s);
	return s;
}

/* Field by field: the struct has padding, whose bytes memcmp would compare. */
static inline int t_stats_equal(const struct zp_stats *x, const struct zp_stats *y)
{
	return x->nr_pages == y->nr_pages && x->nr_free == y->nr_free && x->nr_free_zeroed == y->nr_free_zeroed &&
	       x->nr_free_reported == y->nr_free_reported && x->pages_cleared == y->pages_cleared &&
	       x->pages_clear_skipped == y->pages_clear_skipped && x->pages_reported == y->pages_reported &&
	       x->pages_refaulted == y->pages_refaulted && x->verify_failures == y->verify_failures &&
	       x->pages_prezeroed == y->pages_prezeroed && x->report_zeroes == y->report_zeroes;
}

#endif
