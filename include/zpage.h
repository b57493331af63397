/* SPDX-License-Identifier: MIT */
/*
 * zpage - a zero-aware buddy page allocator for user space.
 *
 * An arena is one contiguous virtual range split into power-of-two blocks
 * of 4 KiB pages (the buddy system).  The allocator remembers, per page,
 * whether a free page is known to read as zero ("zeroed") and whether it
 * has been handed back to the OS ("reported").  A zeroing allocation clears
 * only the pages that are not known to be zero, and when the caller says
 * which address it will touch first (user_addr), it clears in an order that
 * leaves that page hot in cache.
 *
 * Every allocation takes user_addr explicitly: pass ZP_USER_ADDR_NONE when
 * there is no address.  Address 0 is a valid address.
 *
 * Thread safety: every function may be called from any thread, except that
 * zp_arena_destroy() must not race with any other call on the same arena.
 *
 * fork(): safe while other threads use the arena.  The child gets a working
 * copy: every free page of the parent is free in the child (blocks that a
 * reporting or pre-zeroing pass held at the fork included); blocks the
 * parent had allocated stay allocated (the child may free them); a block
 * that a parent thread was in the middle of allocating or freeing is lost
 * to the child (neither free nor freeable).  A child whose arena had a
 * background thread (ZP_REPORT, ZP_PREZERO) starts its own at its first
 * allocation, free or pass, and zp_arena_destroy() in the child never
 * touches the parent's.  The library's fork handlers are registered when
 * it is loaded: an application's pthread_atfork() handlers registered
 * after that run while zpage holds none of its locks, and may call it;
 * handlers registered before (by a constructor that runs before the
 * library's, or before a dlopen() of it) run while zpage holds every lock,
 * and must not call it; the fork handlers block every signal but the
 * fault signals from prepare to parent or child (a signal that comes
 * meanwhile is handled after the fork, or on another thread), and then
 * unblock what they blocked: an earlier-registered parent or child
 * handler's unblocking stays, its blocking of such a signal does not.  _Fork()
 * runs no handler: its child may find zpage's locks held (another thread
 * of the parent, the background thread included, was in a call).
 *
 * Signals: no function is async-signal-safe.  A signal handler may call
 * zp_alloc_pages(), zp_free_pages(), zp_alloc() and zp_free() on an arena
 * only when all of these hold:
 *  - it interrupted no function of this header (on any arena);
 *  - in a forked child of a process whose arena had a background thread,
 *    the child has allocated or freed on that arena, or run a pass,
 *    before (that call starts the child's thread, and pthread_create()
 *    may not run in a handler that interrupted malloc);
 *  - while another thread may call fork(), it interrupted no code that
 *    holds a lock fork() takes after the library's prepare handler has
 *    taken every lock of the library's: malloc's, stdio's, glibc's NSS
 *    lock, or a lock that a pthread_atfork() prepare handler registered
 *    before the library's takes.
 * The library's code that runs on an application thread outside those
 * functions (its fork handlers, a thread's exit) blocks every signal but
 * the fault signals, so no such handler runs inside it.  A handler that
 * interrupted a function of this header must not fork() either (the
 * prepare handler waits for the locks it holds).  A thread's first call
 * on an arena maps its cache with mmap(), not malloc; a thread's first
 * call of all sets the library's pthread key, made when the library is
 * loaded, which glibc stores without allocating when fewer than 32 keys
 * were made before it.
 * The library's background thread blocks every signal but the
 * fault signals (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS), so a
 * signal sent to the process is never handled on it, unless it is one of
 * those sent with kill() while every application thread blocks it.
 *
 * Cancellation: no function is a cancellation point while it holds a lock,
 * and zp_arena_destroy() is none at all (a destroy cancelled half way
 * would leave the arena mapped).
 *
 * Resident memory: the arena is reserved, not committed.  With transparent
 * huge pages (the default; the system's THP mode must be "always" or
 * "madvise"), the first write to a 2 MiB-aligned range may commit all 2 MiB
 * of it: pass ZP_NOHUGEPAGE to commit 4 KiB at a time.  The metadata costs
 * at most 12.25 bytes per page, reserved too and faulted in as pages are
 * used: creating an arena, even of 1 TiB, writes none of it, even under
 * mlockall(MCL_FUTURE) (the range is then locked on fault, page by page as
 * it is first touched, and report passes cannot hand locked pages back;
 * without CAP_IPC_LOCK the kernel counts such a range whole against
 * RLIMIT_MEMLOCK, and refuses one larger: ENOMEM).  An mlockall(MCL_CURRENT)
 * without MCL_ONFAULT made while an arena exists commits all of it, as it
 * would any mapping.
 */
#ifndef ZPAGE_H
#define ZPAGE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define ZP_API __attribute__((visibility("default")))
#else
#define ZP_API
#endif

#define ZP_PAGE_SHIFT	  12
#define ZP_PAGE_SIZE	  ((size_t)1 << ZP_PAGE_SHIFT)
#define ZP_USER_ADDR_NONE ((uintptr_t)-1)

/* Largest max_order an arena accepts: blocks of 2^20 pages (4 GiB). */
#define ZP_MAX_ORDER_LIMIT 20u

typedef unsigned int zp_gfp_t;
#define ZP_GFP_ZERO 0x1u /* the caller needs zero-filled memory */

/* arena flags (struct zp_config.flags) */
#define ZP_INIT_ON_ALLOC    0x01u /* every allocation is zero-filled */
#define ZP_INIT_ON_FREE	    0x02u /* pages are cleared when freed */
#define ZP_VERIFY	    0x04u /* check zero pages read zero; poison freed pages (unless ZP_INIT_ON_FREE) */
#define ZP_REPORT	    0x08u /* background reporting thread */
#define ZP_PREZERO	    0x10u /* background pre-zeroing thread */
#define ZP_REPORT_MADV_FREE 0x20u /* report with MADV_FREE: cheaper, pages do not come back zero */
#define ZP_NOHUGEPAGE	    0x40u /* no transparent huge pages: commit 4 KiB at a time */

/* A zero-initialised field means "the default". */
struct zp_config {
	size_t size;		  /* bytes to manage (default 1 GiB); multiple of ZP_PAGE_SIZE */
	unsigned max_order;	  /* largest block = page << max_order (default 10) */
	unsigned flags;		  /* ZP_INIT_ON_ALLOC | ZP_INIT_ON_FREE | ... */
	unsigned report_order;	  /* smallest block handed back to the OS (default 9) */
	unsigned report_delay_ms; /* from the first free after a report pass to the next
				     pass (default 2000); the pass reports every free
				     block, however recently freed */
	size_t prezero_bytes;	  /* zeroed resident memory to keep ready */
	/* the clearing engine (docs/DESIGN.md, section 6) */
	size_t clear_hot_bytes; /* neighbourhood around user_addr cleared with cached
				   stores, target page last: the target and
				   clear_hot_bytes / 8 KiB pages on each side
				   (default 64 KiB: 17 pages) */
	size_t clear_nt_min;	/* dirty runs at least this long are cleared with
				   non-temporal stores (default 256 KiB), except
				   in a block of order 0 to 8 that the
				   allocating thread freed into its own cache,
				   and a block freed less than 1 ms ago no larger
				   than half the last-level cache: cached stores
				   (docs/DESIGN.md, section 6) */
};

/* Counters of one arena.  Page counts are in pages of ZP_PAGE_SIZE. */
struct zp_stats {
	size_t nr_pages;	      /* pages managed */
	size_t nr_free;		      /* free pages: on the lists, in the threads' caches, held by
					  a report / pre-zero pass, or never used yet */
	size_t nr_free_zeroed;	      /* free, known zero, resident (lists and caches) */
	size_t nr_free_reported;      /* free, handed back to the OS */
	uint64_t pages_cleared;	      /* pages zero-filled by the library */
	uint64_t pages_clear_skipped; /* pages handed out zeroed without a clear */
	uint64_t pages_reported;      /* pages returned to the OS so far */
	uint64_t pages_refaulted; /* pages allocated while in reported state */
	uint64_t verify_failures; /* ZP_VERIFY: zero-marked pages found non-zero */
	uint64_t pages_prezeroed; /* pages cleared ahead of demand (pre-zero passes) */
	int report_zeroes;	  /* 1: reported pages are trusted to read zero (the backend
				     promises it and the start-up self-test confirmed it) */
};

struct zp_arena;

/**
 * zp_arena_create() - reserve and initialise an arena.
 * @cfg: configuration, or NULL for all defaults.
 *
 * The range is reserved, not committed: untouched memory costs nothing and
 * counts as zeroed and reported (the OS zero-fills it on first touch).
 *
 * Context: any thread.
 * Return: the arena, or NULL with errno set: EINVAL for a bad configuration
 * (size not a multiple of ZP_PAGE_SIZE or of 2^32 - 1 pages or more,
 * max_order above ZP_MAX_ORDER_LIMIT, report_order above max_order, unknown
 * flags), ENOMEM when the address space or metadata cannot be reserved
 * (or, under mlockall(MCL_FUTURE), locked within RLIMIT_MEMLOCK), or
 * the error of pthread_create() when a background thread cannot start.
 * Nothing is left behind on failure.
 *
 * Environment, read at each creation for the fields left 0 (an unset or
 * empty variable means the default).  Each takes a decimal number (no
 * sign, no hex) within its range; anything else is ignored with one
 * message on stderr naming the variable and the range (once per process):
 *   ZPAGE_REPORT_DELAY_MS  1..86400000, default 2000
 *   ZPAGE_REPORT_ORDER     1..20, default min(9, max_order); a value above
 *                          max_order is clamped to it, with a message
 *   ZPAGE_PREZERO_BYTES    0..2^46, a K, M or G suffix allowed; default 0
 *   ZPAGE_PREZERO_RATE_MB  1..1048576: the background pre-zeroing rate cap
 *                          in MiB/s, default 1024
 * As in struct zp_config, 0 is not a delay or an order (it means the
 * default).  An environment value never makes a valid configuration invalid.
 */
ZP_API struct zp_arena *zp_arena_create(const struct zp_config *cfg);

/**
 * zp_arena_destroy() - stop background threads and unmap the arena.
 * @a: the arena, or NULL (no-op).
 *
 * Every pointer the arena handed out becomes invalid.  Returns within one
 * block's system calls or one block's clear of a background pass in flight
 * (a pass checks between blocks; the thread never sleeps where destroy
 * cannot wake it).
 * Context: must not race with any other call on @a.
 */
ZP_API void zp_arena_destroy(struct zp_arena *a);

/**
 * zp_alloc_pages() - allocate a block of 2^order pages.
 * @a: the arena.
 * @gfp: ZP_GFP_ZERO for zero-filled memory, or 0.
 * @order: log2 of the number of pages, at most the arena's max_order.
 * @user_addr: the address the caller will touch first (only its page offset
 *             within the block matters), or ZP_USER_ADDR_NONE.
 *
 * A zeroing allocation clears only pages not already known to be zero, and
 * with a user_addr clears the page holding it last, so it is hot in cache.
 *
 * Context: any thread; from a signal handler only as "Signals:" above
 * says (never one that interrupted a call of the library, on any arena:
 * the threads' caches share one lock).
 * Never sleeps on I/O; may take the arena lock.  Orders 0-8 (below
 * report_order) come from the calling thread's cache (no lock); when no
 * free block is found it empties every thread's cache and retries with
 * every lock held, and waits for a reporting or pre-zeroing pass in
 * flight to put back the blocks it holds.
 * Return: the block, aligned to its own size, or NULL with errno EINVAL
 * (NULL arena, unknown gfp bits, order above max_order) or ENOMEM (at one
 * instant, no free block that large anywhere in the arena, whatever other
 * threads do; the arena stays fully usable).
 */
ZP_API void *zp_alloc_pages(struct zp_arena *a, zp_gfp_t gfp, unsigned int order, uintptr_t user_addr);

/**
 * zp_free_pages() - return a block to the arena.
 * @a: the arena.
 * @addr: a pointer zp_alloc_pages() returned and that is still allocated.
 * @order: the order it was allocated with.
 *
 * Context: as zp_alloc_pages() (it uses the thread's cache).  The free of
 * a block another thread allocated may wait for that thread to leave a
 * call of this header it is in (the first such free after that thread
 * freed many of its own blocks; every lock it takes is the library's).
 * Return: 0, or -EINVAL if @addr is not a live allocation of exactly @order
 * in @a (NULL, outside the arena, misaligned, not the head of a block, the
 * wrong order, already freed).  On -EINVAL nothing is changed.
 */
ZP_API int zp_free_pages(struct zp_arena *a, void *addr, unsigned int order);

/**
 * zp_alloc() - allocate @size bytes, rounded up to whole pages, and no more
 * (the kernel's alloc_pages_exact()).
 * @a: the arena.
 * @gfp: ZP_GFP_ZERO for zero-filled memory, or 0.
 * @size: bytes, at least 1; rounded up to a multiple of ZP_PAGE_SIZE.
 * @user_addr: as for zp_alloc_pages(): the address the caller touches first
 *             (its offset within the block of the rounded-up power of two
 *             picks the page cleared last; beyond the size, the last page),
 *             or ZP_USER_ADDR_NONE.
 *
 * The block is taken as zp_alloc_pages() takes the power of two that holds
 * the size, then the pages past the size go back to the free lists with
 * their zero state, before anything is cleared: a 3 MiB request costs
 * 3 MiB of the arena, and a zeroing one clears at most 3 MiB.  A size that
 * is a power-of-two number of pages is a plain zp_alloc_pages() block.
 *
 * Context: as zp_alloc_pages(); a size that is not a power of two takes
 * the arena lock once more to give the rest back.
 * Return: the block, page-aligned (aligned to the power of two that holds
 * it), or NULL with errno EINVAL (NULL arena, unknown gfp bits, size 0) or
 * ENOMEM (the power of two of pages that holds it is larger than a block
 * of max_order or than the arena, even when the size itself would fit;
 * or no free block that large at one instant).  Free it with zp_free().
 */
ZP_API void *zp_alloc(struct zp_arena *a, zp_gfp_t gfp, size_t size, uintptr_t user_addr);

/**
 * zp_free() - free any live allocation: from zp_alloc(), or a block from
 * zp_alloc_pages() (its order is read from the arena).
 * @a: the arena.
 * @addr: the address zp_alloc() or zp_alloc_pages() returned.
 *
 * Context: as zp_free_pages().
 * Return: 0, or -EINVAL with nothing changed: NULL arena or pointer, an
 * address outside the arena, not page-aligned, inside a block rather than
 * at its start, or not live (a double free, even one racing another).
 */
ZP_API int zp_free(struct zp_arena *a, void *addr);

/**
 * zp_usable_size() - the bytes usable at @addr.
 * @a: the arena.
 * @addr: an address.
 *
 * Return: the size of the live allocation that starts at @addr (whole
 * pages: zp_alloc()'s rounded-up size, or ZP_PAGE_SIZE << order), or 0 for
 * anything else (NULL, foreign, interior, free).  Not while another thread
 * frees @addr (as malloc_usable_size()): the answer may then be neither.
 */
ZP_API size_t zp_usable_size(struct zp_arena *a, const void *addr);

/**
 * zp_arena_report() - hand free blocks of report_order or larger back to the OS now.
 * @a: the arena.
 *
 * Every free block of report_order or larger that has a page not yet
 * reported is isolated under the arena lock, handed to the OS with the lock
 * dropped (madvise MADV_DONTNEED by default), and put back marked reported
 * (and zeroed when the backend's zero-fill was confirmed at start-up).
 * Zeroed resident pages are kept (only the block's other pages are handed
 * back) while reporting them would leave less than prezero_bytes of zeroed
 * resident memory.  A block whose system call fails (a page of it is
 * mlocked, say) is put back with its state unchanged (or, when only its
 * dirty runs were being handed back, with the runs before the failed one
 * marked reported) and the pass goes on with the others, not trying it
 * again (after 64 failures it stops).
 * Allocation and free go on meanwhile.  Ignores report_delay_ms.
 *
 * Context: any thread; makes system calls with no lock held.
 * Return: the number of pages newly reported by this pass, or -errno of the
 * first failed system call when none could be reported, or -EINVAL for a
 * NULL arena.
 */
ZP_API long zp_arena_report(struct zp_arena *a);

/**
 * zp_arena_prezero() - clear dirty free blocks ahead of demand.
 * @a: the arena.
 * @max_bytes: clear at least this many bytes (rounded up to pages) when
 *             that much is dirty on the buddy lists; 0 = until the arena
 *             has prezero_bytes of zeroed resident free memory on its
 *             buddy lists.  The threads' caches are neither cleared nor
 *             counted: their dirty pages wait for their owners.
 *
 * Dirty free blocks are isolated one at a time under the lock, each no
 * larger than what is left to clear (a larger block is split), their
 * resident dirty pages cleared with non-temporal stores with the lock
 * dropped, and put back marked zeroed.  A page handed back to the OS is
 * never written, even when it is not known zero (ZP_REPORT_MADV_FREE):
 * that would take it back from the OS.  Not rate-capped (the ZP_PREZERO
 * thread is, after every burst of at most 4 MiB).
 *
 * Context: any thread; clears with no lock held.
 * Return: the number of pages cleared by this pass (0 when nothing is
 * dirty or the target is already met), or -EINVAL for a NULL arena.
 */
ZP_API long zp_arena_prezero(struct zp_arena *a, size_t max_bytes);

/**
 * zp_arena_stats() - read the arena's counters.
 * @a: the arena; NULL fills @st with zeroes.
 * @st: filled in, with every lock held: the page counts are exact at one
 *      instant, and the counters of reporting and pre-zeroing match them
 *      (a pass counts its work as it puts its blocks back).  The clearing
 *      counters of an allocation or free in flight at that instant may
 *      be counted or not yet.
 *
 * Context: any thread.  Costs a walk of the threads' caches (each thread
 * that used the arena waits for the walk at its next call).
 */
ZP_API void zp_arena_stats(struct zp_arena *a, struct zp_stats *st);

/**
 * zp_arena_check() - verify every invariant of the arena.
 * @a: the arena.
 *
 * Walks every free list and every page descriptor: buddy rule, alignment,
 * list membership matches page state, counters match.  Takes all locks.
 *
 * Context: any thread.  O(pages) descriptors (plus a bitmap pass per level
 * of the summary tree's mixed nodes): it reads every descriptor, the never-used
 * ones too (0.75 s for a 1 TiB arena here, and the page tables mapping
 * the metadata stay until the arena is destroyed).
 * Return: 0, -EUCLEAN with the first broken invariant printed on stderr,
 * or -EINVAL for a NULL arena.
 */
ZP_API int zp_arena_check(struct zp_arena *a);

/**
 * zp_arena_dump() - print the arena's state, for people.
 * @a: the arena (NULL: nothing is printed).
 * @f: where to print (NULL: nothing is printed).
 *
 * In the manner of /proc/buddyinfo and malloc_stats_print(): the free
 * blocks per order and state (zeroed, dirty, reported) on the buddy lists,
 * the same for the threads' caches (summed over threads), the blocks a
 * reporting or pre-zeroing pass holds, the never-used pages, the page totals
 * (equal to those of zp_arena_stats() at the same instant: the free pages
 * split into zeroed, reported, dirty and held by a pass) and the counters.
 * Everything is copied at one instant with every lock held, then printed
 * with none held.
 *
 * Context: any thread.  O(max_order + cached blocks); allocates nothing.
 */
ZP_API void zp_arena_dump(struct zp_arena *a, FILE *f);

#ifdef __cplusplus
}
#endif

#endif /* ZPAGE_H */
