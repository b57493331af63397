/* SPDX-License-Identifier: MIT */
/*
 * lock.h - the library's locks and the lock rules the code checks.
 *
 * Lock order, always:
 *   1. the registry lock (arena.c: create, destroy, the fork handlers);
 *   2. tc_lock, which quiesces the threads' caches (tcache.c);
 *   3. a thread's "active" section on its own cache (a flag, not a lock:
 *      a quiescer holding tc_lock waits for it to end);
 *   4. the arena lock.
 * Never take tc_lock while holding the arena lock (checked: the paths
 * that take it begin with lock_assert_not_held(arena lock)) or while
 * active (by construction: tc_enter() takes it only after clearing
 * active).  Fork prepare holds the locks of the arenas it has quiesced
 * while it waits for the next arena's owners: safe because an active
 * section takes only its own arena's lock.  No bulk
 * clear, no allocation and no system call but the futex wake-up of a
 * condition variable is made under the arena lock; the one exception is
 * zp_arena_check() printing a broken invariant to stderr.
 *
 * Every function that needs a lock held says so at its top with
 * lock_assert_held(), like Linux's lockdep_assert_held() and SQLite's
 * assert(sqlite3_mutex_held()).  Built with ZPAGE_LOCKDEP (the ASan+UBSan
 * build of `make check`), each lock records the thread that holds it and a
 * function called without its lock aborts with the lock's name and the
 * caller's location; without it the checks compile to nothing.
 *
 * Invariant (ZPAGE_LOCKDEP): a lock's owner is the thread between its
 * lock and unlock, 0 otherwise; a condition wait gives the lock up and
 * takes it back, and so does the owner.
 */
#ifndef ZPAGE_LOCK_H
#define ZPAGE_LOCK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

struct zlock {
	pthread_mutex_t mu;
	_Atomic unsigned long owner; /* ZPAGE_LOCKDEP: pthread_self() of the holder, else 0 */
};


#ifdef ZPAGE_LOCKDEP
void lockdep_fail(const char *what, const char *file, int line, const char *func);
#define lockdep_acquire(l) atomic_store_explicit(&(l)->owner, (unsigned long)pthread_self(), memory_order_relaxed)
#define lockdep_release(l) atomic_store_explicit(&(l)->owner, 0, memory_order_relaxed)
#define lock_assert_held(l)                                                                                            \
	do {                                                                                                           \
		if (atomic_load_explicit(&(l)->owner, memory_order_relaxed) != (unsigned long)pthread_self())          \
			lockdep_fail(#l, __FILE__, __LINE__, __func__);                                                \
	} while (0)
#define lock_assert_not_held(l)                                                                                        \
	do {                                                                                                           \
		if (atomic_load_explicit(&(l)->owner, memory_order_relaxed) == (unsigned long)pthread_self())          \
			lockdep_fail("not " #l, __FILE__, __LINE__, __func__);                                         \
	} while (0)
#else
#define lockdep_acquire(l) ((void)(l))
#define lockdep_release(l) ((void)(l))
#define lock_assert_held(l)	((void)(l))
#define lock_assert_not_held(l) ((void)(l))
#endif

static inline void zlock_init(struct zlock *l, const pthread_mutexattr_t *attr)
{
	pthread_mutex_init(&l->mu, attr);
	atomic_init(&l->owner, 0);
}
static inline void zlock_destroy(struct zlock *l)
{
	pthread_mutex_destroy(&l->mu);
}
static inline void zlock_lock(struct zlock *l)
{
	pthread_mutex_lock(&l->mu);
	lockdep_acquire(l);
}
static inline void zlock_unlock(struct zlock *l)
{
	lockdep_release(l);
	pthread_mutex_unlock(&l->mu);
}
/* pthread_cond_wait() on a held zlock. */
static inline void zlock_cond_wait(struct zlock *l, pthread_cond_t *c)
{
	lockdep_release(l);
	pthread_cond_wait(c, &l->mu);
	lockdep_acquire(l);
}

/* A timed wait through @wait (which waits on @c with l->mu), on a held zlock. */
static inline void zlock_cond_wait_fn(struct zlock *l, pthread_cond_t *c,
				      void (*wait)(void *ctx, pthread_cond_t *, pthread_mutex_t *, uint64_t),
				      void *ctx, uint64_t deadline)
{
	lockdep_release(l);
	wait(ctx, c, &l->mu, deadline);
	lockdep_acquire(l);
}

#endif /* ZPAGE_LOCK_H */
