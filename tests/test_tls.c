/* SPDX-License-Identifier: MIT */
/*
 * test_tls: the background thread in a program with a large static TLS.
 *
 * glibc carves a new thread's static TLS (here the 506 KiB of tls_big)
 * out of the top of the stack size asked for.  The library asked for
 * 512 KiB whatever the TLS: this program's thread was left about 6 KiB,
 * less than its deepest path, and a program with 512 KiB or more got the
 * 8 MiB default (pthread_create refused the size).  It now asks for its
 * size beyond os_static_tls_bound().  A binary of its own, since the TLS
 * is the whole program's.
 */
#include <pthread.h>
#include <unistd.h>

#include "test.h"

#define TLS_BYTES ((size_t)506 << 10)
#define KiB	  ((size_t)1 << 10)
#define MiB	  ((size_t)1 << 20)

__thread char tls_big[TLS_BYTES]; /* not static: kept however unused */

static struct zp_stats stats_of(struct zp_arena *a)
{
	struct zp_stats s;

	zp_arena_stats(a, &s);
	return s;
}

static void tls_bound_covers_the_program(void)
{
	tls_big[0] = 1; /* this thread's copy, touched */
	EXPECT_GE(os_static_tls_bound(), TLS_BYTES);
	EXPECT_LE(os_static_tls_bound(), TLS_BYTES + MiB);
}

static void background_thread_stack_beyond_static_tls(void)
{
	struct zp_config c = {.size = 64 * MiB,
			      .max_order = 9,
			      .flags = ZP_REPORT | ZP_PREZERO,
			      .report_delay_ms = 1,
			      .prezero_bytes = 4 * MiB};
	struct zp_arena *a = zp_arena_create(&c);
	pthread_attr_t at;
	size_t sz = 0;
	char *p[4];
	bool done = false;

	ASSERT(a);
	ASSERT(a->daemon_running);
	ASSERT_EQ(pthread_getattr_np(a->daemon, &at), 0);
	pthread_attr_getstacksize(&at, &sz);
	pthread_attr_destroy(&at);
	T_NOTE("static TLS %zu KiB, the thread's stack %zu KiB", TLS_BYTES / KiB, sz / KiB);
	/* at least 256 KiB left to the thread beyond its static TLS */
	EXPECT_GE(sz, TLS_BYTES + 256 * KiB);
#if !defined(__SANITIZE_THREAD__)
	/* and not the default (RLIMIT_STACK, often 8 MiB) */
	EXPECT_LE(sz, TLS_BYTES + 2 * MiB);
#endif
	/* make the thread run its passes: dirty blocks to pre-zero and report */
	for (int i = 0; i < 4; i++) {
		p[i] = zp_alloc_pages(a, 0, 9, ZP_USER_ADDR_NONE);
		ASSERT(p[i]);
		memset(p[i], 1, 2 * MiB);
	}
	for (int i = 0; i < 4; i++)
		ASSERT_EQ(zp_free_pages(a, p[i], 9), 0);
	for (int i = 0; i < 5000 && !done; i++) {
		struct zp_stats s = stats_of(a);

		done = s.pages_reported > 0 && s.pages_prezeroed > 0;
		if (!done)
			usleep(1000);
	}
	EXPECT(done);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

int main(int argc, char **argv)
{
	t_init(argc, argv);
	RUN(tls_bound_covers_the_program);
	RUN(background_thread_stack_beyond_static_tls);
	return t_done("test_tls");
}
