/* SPDX-License-Identifier: MIT */
/*
 * test_tls: the background thread in a program with a large static TLS.
 *
 * glibc carves a new thread's static TLS (here the 506 KiB of tls_big)
 * and its descriptor out of the top of the stack size asked for.  The
 * library asked for 512 KiB whatever the TLS: from about 500 KiB of TLS
 * the thread was left a few KiB, less than its deepest path, and from
 * about 501 KiB (this program) glibc refused the size and the thread got
 * the 8 MiB default.  It now asks for its size beyond os_static_tls_bound(),
 * measured once when the library is loaded: measured at each start, it
 * took the dynamic loader's lock, which a thread inside a
 * dl_iterate_phdr() callback holds (the start waited for it) and which a
 * forked child may find held forever.  A binary of its own, since the TLS
 * is the whole program's.
 */
#include <link.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

/* ThreadSanitizer: a child of this multi-threaded process starts the
 * arena's background thread.  Harmless elsewhere. */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
	return "die_after_fork=0";
}

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
	/* not absurd: glibc's default surplus is a few KiB (its tunable
	 * glibc.rtld.optional_static_tls may make it any size) */
	if (!getenv("GLIBC_TUNABLES"))
		EXPECT_LE(os_static_tls_bound(), TLS_BYTES + MiB);
	else
		T_NOTE("GLIBC_TUNABLES is set: the upper bounds of this binary are not checked");
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
	if (!getenv("GLIBC_TUNABLES"))
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

/* A thread inside a dl_iterate_phdr() callback, holding the loader's lock
 * until it is let go (at most 20 s). */
static atomic_int in_callback, let_go;

static int hold_cb(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)info, (void)size, (void)data;
	atomic_store(&in_callback, 1);
	for (int i = 0; i < 20000 && !atomic_load(&let_go); i++)
		usleep(1000);
	return 1; /* one module is enough */
}

static void *hold_loader_lock(void *arg)
{
	(void)arg;
	dl_iterate_phdr(hold_cb, NULL);
	return NULL;
}

static pthread_t start_holder(void)
{
	pthread_t h;

	atomic_store(&in_callback, 0);
	atomic_store(&let_go, 0);
	if (pthread_create(&h, NULL, hold_loader_lock, NULL))
		abort();
	while (!atomic_load(&in_callback))
		usleep(1000);
	return h;
}

static void *create_report_arena(void *arg)
{
	struct zp_config c = {.size = 16 * MiB, .max_order = 9, .flags = ZP_REPORT};

	(void)arg;
	return zp_arena_create(&c);
}

static void thread_start_takes_no_loader_lock(void)
{
	pthread_t h = start_holder(), w;
	struct timespec ts;
	void *a = NULL;
	int err;

	ASSERT_EQ(pthread_create(&w, NULL, create_report_arena, NULL), 0);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 5;
	err = pthread_timedjoin_np(w, &a, &ts);
	if (err)
		T_REPORT("an arena with a background thread took over 5 s to create while another thread held "
			 "the loader's lock (in a dl_iterate_phdr() callback): %s",
			 strerror(err));
	atomic_store(&let_go, 1);
	pthread_join(h, NULL);
	if (err)
		pthread_join(w, &a);
	ASSERT(a);
	EXPECT(((struct zp_arena *)a)->daemon_running);
	zp_arena_destroy(a);
}

static void forked_child_starts_its_thread_with_the_loader_lock_held(void)
{
	struct zp_arena *a = create_report_arena(NULL);
	pthread_t h;
	pid_t pid;
	int st;

	ASSERT(a);
	ASSERT(a->daemon_running);
	h = start_holder();
	fflush(NULL);
	pid = fork(); /* the holder's lock is held forever in the child */
	if (pid == 0) {
		char *p;

		alarm(10);
		p = zp_alloc_pages(a, 0, 0, ZP_USER_ADDR_NONE); /* the child's first call starts its thread */
		if (!p)
			_exit(2);
		*p = 1;
		if (zp_free_pages(a, p, 0) || !a->daemon_running)
			_exit(3);
		_exit(0);
	}
	atomic_store(&let_go, 1);
	pthread_join(h, NULL);
	ASSERT(pid > 0);
	st = t_wait_child(pid);
	if (st > 0)
		T_DIAG("child exit %d: %s", st, st == 2 ? "the allocation failed" : "the free failed or no thread started");
	EXPECT_EQ(st, 0);
	zp_arena_destroy(a);
}

int main(int argc, char **argv)
{
	t_init(argc, argv);
	RUN(tls_bound_covers_the_program);
	RUN(background_thread_stack_beyond_static_tls);
	RUN(thread_start_takes_no_loader_lock);
	RUN(forked_child_starts_its_thread_with_the_loader_lock_held);
	return t_done("test_tls");
}
