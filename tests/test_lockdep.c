/* SPDX-License-Identifier: MIT */
/*
 * The lock rules checked by the code (src/lock.h): in the build with
 * ZPAGE_LOCKDEP (the ASan+UBSan build of `make check`), a function that
 * needs a lock and is called without it aborts, naming itself and the
 * lock; so does the thread cache's zeroing pop run outside its owner's
 * active section.  Each violation runs in a child process.
 */
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

#ifdef ZPAGE_LOCKDEP
/* Run @fn in a child with stderr on a pipe; return its status and what it
 * printed. */
static int in_child(void (*fn)(struct zp_arena *), struct zp_arena *a, char *out, size_t len)
{
	int fd[2], status = 0;
	ssize_t n, got = 0;
	pid_t pid;

	if (pipe(fd))
		return -1;
	pid = fork();
	if (pid == 0) {
		dup2(fd[1], 2);
		close(fd[0]);
		fn(a);
		_exit(0);
	}
	close(fd[1]);
	while ((size_t)got < len - 1 && (n = read(fd[0], out + got, len - 1 - (size_t)got)) > 0)
		got += n;
	out[got] = 0;
	close(fd[0]);
	waitpid(pid, &status, 0);
	return status;
}

static void take_block_unlocked(struct zp_arena *a)
{
	rmqueue_smallest(a, 0, false, ALL_STATES, NULL, NULL);
}

static void take_block_locked(struct zp_arena *a)
{
	zlock_lock(&a->lock);
	if (rmqueue_smallest(a, 0, false, ALL_STATES, NULL, NULL) == NIL)
		_exit(3);
	zlock_unlock(&a->lock);
}

static void stats_without_caches_locked(struct zp_arena *a)
{
	struct zp_stats st;

	zlock_lock(&a->lock); /* the arena lock, but not tc_lock (the caches) */
	stats_locked(a, &st);
	zlock_unlock(&a->lock);
}

/* This thread's cache of @a, made by a block's allocation and free. */
static struct tcache *my_cache(struct zp_arena *a)
{
	void *p = zp_alloc_pages(a, 0, 0, ZP_USER_ADDR_NONE);

	if (!p || zp_free_pages(a, p, 0) || !tc_mine(a))
		_exit(3);
	return tc_mine(a);
}

/* the cache's everyday zeroing pop without its active section */
static void cache_pop_not_entered(struct zp_arena *a)
{
	bool hot, full;

	rmqueue_tcache_zero(a, my_cache(a), 0, &hot, &full);
}

/* the same, entered: it leaves the section itself */
static void cache_pop_entered(struct zp_arena *a)
{
	struct tcache *t = my_cache(a);
	bool hot, full;

	if (!tc_try_enter(t))
		_exit(4);
	rmqueue_tcache_zero(a, t, 0, &hot, &full);
}

static struct tcache *other_cache;
static void *pop_other(void *arg)
{
	bool hot, full;

	rmqueue_tcache_zero(arg, other_cache, 0, &hot, &full);
	return NULL;
}

/* another thread's cache, entered by its owner, popped by this thread */
static void cache_pop_by_another_thread(struct zp_arena *a)
{
	pthread_t th;

	other_cache = my_cache(a);
	if (!tc_try_enter(other_cache))
		_exit(4);
	if (pthread_create(&th, NULL, pop_other, a))
		_exit(5);
	pthread_join(th, NULL);
}

#endif

static void unlocked_call_aborts(void)
{
#ifndef ZPAGE_LOCKDEP
	SKIP("the lock rules are checked in the ASan+UBSan build (ZPAGE_LOCKDEP)");
#else
	struct zp_arena *a = t_arena(64, 4, 0);
	char out[512];
	int st;

	st = in_child(take_block_unlocked, a, out, sizeof(out));
	EXPECT(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
	EXPECT(strstr(out, "zpage: lockdep: rmqueue_smallest()") != NULL);
	EXPECT(strstr(out, "&a->lock") != NULL);

	st = in_child(stats_without_caches_locked, a, out, sizeof(out));
	EXPECT(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
	EXPECT(strstr(out, "stats_locked()") != NULL && strstr(out, "&tc_lock") != NULL);

	st = in_child(cache_pop_not_entered, a, out, sizeof(out));
	EXPECT(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
	EXPECT(strstr(out, "rmqueue_tcache_zero()") != NULL && strstr(out, "active section") != NULL);

	st = in_child(cache_pop_by_another_thread, a, out, sizeof(out));
	EXPECT(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
	EXPECT(strstr(out, "rmqueue_tcache_zero()") != NULL && strstr(out, "its own thread cache") != NULL);

	st = in_child(cache_pop_entered, a, out, sizeof(out));
	EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	EXPECT_EQ(out[0], 0);

	st = in_child(take_block_locked, a, out, sizeof(out));
	EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	EXPECT_EQ(out[0], 0);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
#endif
}

int main(int argc, char **argv)
{
	t_init(argc, argv);
	RUN(unlocked_call_aborts);
	return t_done("test_lockdep");
}
