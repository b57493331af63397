/* SPDX-License-Identifier: MIT */
/*
 * os.h - every contact zpage has with the operating system (os.c).
 *
 * Nothing else in src/ maps or unmaps memory, gives memory back, reads a
 * clock, waits with a deadline, issues a membarrier, starts a thread
 * or registers fork handlers: they call these.  (Elsewhere, src/ only waits
 * on condition variables without a deadline and joins its thread.)  Tests replace the reporting backend and the clock (struct
 * zp_backend) with fakes, and the fake clock covers the background
 * thread's sleeps too (wait_until).
 */
#ifndef ZPAGE_OS_H
#define ZPAGE_OS_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- memory ---- */

/*
 * Reserve @len bytes of private anonymous memory aligned to @align (a power
 * of two, at least the page size), nothing committed (MAP_NORESERVE).
 * @hugepages: MADV_HUGEPAGE (the first touch of a 2 MiB range may commit all
 * of it); otherwise MADV_NOHUGEPAGE (4 KiB at a time, even when the system's
 * THP mode is "always").  Returns the range or NULL with errno set.
 */
void *os_reserve(size_t len, size_t align, bool hugepages);

/* Reserve @len bytes of zero-filled metadata (MAP_NORESERVE).  NULL + errno. */
void *os_map_meta(size_t len);

void os_unmap(void *addr, size_t len);

/* @len bytes of zero-filled private memory of the library's own (a thread's
 * cache): mmap(), which takes no lock of the process's (glibc: AS-Safe), so
 * a signal handler that interrupted malloc may call it.  NULL + errno. */
void *os_map_private(size_t len);

/* ---- giving memory back: the reporting backends ---- */

/*
 * The OS behind reporting, and the clock the background thread runs on.
 * A backend either zero-fills what it is given (zeroes) or may leave the old
 * contents in place (MADV_FREE): never anything else.
 */
struct zp_backend {
	const char *name;
	int (*report)(void *ctx, void *addr, size_t len); /* 0 or -errno */
	bool zeroes;					  /* reported ranges read back as zero */
	uint64_t (*now_ms)(void *ctx);			  /* a monotonic clock */
	void *ctx;
	/*
	 * Wait on @cond (with @lock held, as pthread_cond_wait) until now_ms()
	 * reaches @deadline_ms or the condition is signalled.  NULL: a fake
	 * clock that moves only when a test moves it; the wait lasts until the
	 * condition is signalled (zp_test_kick()).
	 */
	void (*wait_until)(void *ctx, pthread_cond_t *cond, pthread_mutex_t *lock, uint64_t deadline_ms);
};

/* madvise(MADV_DONTNEED): zero-fills, trusted only after os_discard_zero_fills() */
extern const struct zp_backend os_backend_dontneed;
/* madvise(MADV_FREE): the OS may keep the old contents */
extern const struct zp_backend os_backend_free;

/* Does MADV_DONTNEED really zero-fill private anonymous memory here?  A
 * self-test, run once per process (emulators may not zero-fill). */
bool os_discard_zero_fills(void);

/* ---- the CPU ---- */

/* The last-level cache's size in bytes (sysfs, read once), 0 if unknown. */
size_t os_llc_bytes(void);

/* ---- time ---- */

uint64_t os_now_ms(void); /* CLOCK_MONOTONIC */
uint64_t os_now_ns(void); /* CLOCK_MONOTONIC */

/* A condition variable whose timed waits use CLOCK_MONOTONIC. */
int os_cond_init(pthread_cond_t *cond);

/* Wait on @cond until os_now_ms() >= @deadline_ms or a signal; @lock held. */
void os_cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *lock, uint64_t deadline_ms);

/* ---- moving pages ---- */

/* mremap, no copy; from reads zero after; 0, or -errno with to still mapped,
 * except -ENOTRECOVERABLE: part of to lost its mapping (never write it) */
int os_move_pages(void *from, void *to, size_t len, bool hugepages);
/* this kernel's moves are made at all (the probe, once per process) */
bool os_moves_supported(void);
/* the next move unmaps its target and fails (EFAULT), as older kernels may
 * (@how 1), and another mapping takes the target's first page (@how 2) */
void zp_test_fail_next_move(int how);

/* ---- asymmetric fences ---- */

bool os_membarrier_register(void); /* true: os_membarrier() works in this process */
int os_membarrier(void);	   /* a full barrier on every running thread; 0 or -errno */
void os_backoff(unsigned *n);	   /* waiting for another thread: yield, then sleep 20 us (never a cancellation point); *n = 0 first */

/* ---- threads ---- */

/*
 * Start a library thread with every signal blocked (but the synchronous
 * fault signals SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS), so that a
 * signal the application blocks in its own threads is never delivered to
 * ours.  Its stack is 512 KiB (1 MiB under ASan; the default under TSan)
 * beyond os_static_tls_bound().
 * Returns 0 or an errno value.
 */
int os_thread_start(pthread_t *t, void *(*fn)(void *), void *arg);

/* Block every signal in this thread but the fault signals (the old mask
 * in @old; a fault signal the thread blocks stays blocked); then unblock
 * what that added.  For library code that runs on an application thread outside any
 * call of the library (fork handlers, a thread's exit), so that a handler
 * that may call the library never runs while it holds a lock. */
void os_block_signals(sigset_t *old);
void os_restore_signals(const sigset_t *old);

/* At least the static TLS a new thread's stack loses to glibc, in bytes. */
size_t os_static_tls_bound(void);

/* ---- fork ---- */

/*
 * Register the fork handlers, once per process (pthread_atfork); done when
 * the library is loaded, and again (a no-op) at each arena creation.  They are
 * the arena registry's (arena.c): prepare takes every lock of every arena,
 * parent releases them, child releases them and repairs what the threads
 * that did not survive the fork left behind.
 */
void os_atfork_init(void);
void arenas_fork_prepare(void);
void arenas_fork_parent(void);
void arenas_fork_child(void);

/* ---- test hooks ---- */

/* Make the next @n os_thread_start() calls fail with @err (0: none). */
void zp_test_fail_thread_start(int n, int err);
/* Make the next @n os_map_private() calls fail with ENOMEM (0: none);
 * returns the count that was left before this call. */
int zp_test_fail_private_maps(int n);

#endif /* ZPAGE_OS_H */
