/* SPDX-License-Identifier: MIT */
/*
 * os.c - the one file that talks to the operating system (see os.h).
 *
 * Mapping: the arena is one private anonymous MAP_NORESERVE mapping,
 * over-reserved by @align and trimmed so that its base is aligned.  With
 * huge pages (the default) the first write to a 2 MiB range may commit all
 * 2 MiB of it; ZP_NOHUGEPAGE asks for 4 KiB pages instead.  Under
 * mlockall(MCL_FUTURE) a new read-write mapping is locked and committed
 * whole before mmap() returns (a 1 TiB reservation would try to commit
 * 1 TiB): when a probe page shows that, the range is mapped PROT_NONE
 * (which nothing commits), locked on fault instead (mlock2 MLOCK_ONFAULT:
 * each page locked as it is first touched, what the program asked for
 * without the commitment), and only then made read-write.
 *
 * Reporting: madvise(MADV_DONTNEED) drops private anonymous pages, which
 * read back as zero; a self-test (once per process, pthread_once) confirms
 * that before reported pages are trusted as zero.  MADV_FREE lets the
 * kernel reclaim the pages lazily: until it does they keep their contents,
 * so they are never trusted as zero.
 *
 * Time: everything runs on CLOCK_MONOTONIC, including the condition
 * variable's timed waits (pthread_condattr_setclock), so a change of the
 * wall clock never stretches or cuts a wait.
 *
 * Threads: a library thread starts with every signal blocked (the mask is
 * set around pthread_create and inherited by the new thread), so a signal
 * the application blocks in its own threads is not delivered to ours.  The
 * signals a fault raises in the faulting thread (SIGSEGV, SIGBUS, SIGFPE,
 * SIGILL, SIGTRAP, SIGSYS) stay unblocked: blocked, the kernel would kill
 * the process instead of running the application's handler.
 *
 * Invariants: every function here is thread-safe; none takes a lock of
 * the library; the dynamic loader's locks are taken only by the load-time
 * constructor (and os_static_tls_bound()'s first call: dl_iterate_phdr(),
 * dlsym()) and inside pthread_create() (glibc's TLS set-up takes
 * dl_load_tls_lock, not the lock dl_iterate_phdr() holds; fork resets it).
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <sched.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <linux/membarrier.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "os.h"

/* ---- memory ---- */

/* Does a new read-write mapping come committed (mlockall(MCL_FUTURE)
 * without MCL_ONFAULT in force)?  One page, never touched: resident only
 * if mmap() populated it. */
static bool mappings_come_committed(void)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	void *p = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned char vec = 0;
	bool yes;

	if (p == MAP_FAILED)
		return false;
	yes = !mincore(p, pg, &vec) && (vec & 1);
	munmap(p, pg);
	return yes;
}

/* @len bytes of private anonymous read-write memory, nothing committed,
 * even under mlockall(MCL_FUTURE) (top of this file).  NULL + errno. */
static void *map_noreserve(size_t len)
{
	const int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
	void *p;
	int err;

	if (!mappings_come_committed()) {
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, -1, 0);
		return p == MAP_FAILED ? NULL : p;
	}
	p = mmap(NULL, len, PROT_NONE, flags, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	/* locked on fault, or, where that is refused, not locked at all:
	 * either way not committed by the mprotect() below */
	if (mlock2(p, len, MLOCK_ONFAULT))
		munlock(p, len);
	if (mprotect(p, len, PROT_READ | PROT_WRITE)) {
		err = errno;
		munmap(p, len);
		errno = err;
		return NULL;
	}
	return p;
}

void *os_reserve(size_t len, size_t align, bool hugepages)
{
	uintptr_t start, aligned;
	char *p;

	if (len + align < len) {
		errno = ENOMEM;
		return NULL;
	}
	p = map_noreserve(len + align);
	if (!p)
		return NULL;
	start = (uintptr_t)p;
	aligned = (start + align - 1) & ~(uintptr_t)(align - 1);
	if (aligned > start)
		munmap(p, aligned - start);
	if (aligned + len < start + len + align)
		munmap((void *)(aligned + len), start + len + align - (aligned + len));
	/* advice only: an OS without transparent huge pages refuses it */
	madvise((void *)aligned, len, hugepages ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	return (void *)aligned;
}

void *os_map_meta(size_t len)
{
	return map_noreserve(len);
}

/* Test hooks: consume one injected failure of *@left, if any is left. */
static bool consume_failure(_Atomic int *left)
{
	int n = atomic_load_explicit(left, memory_order_relaxed);

	while (n > 0)
		if (atomic_compare_exchange_weak(left, &n, n - 1))
			return true;
	return false;
}

static _Atomic int fail_private_maps;

int zp_test_fail_private_maps(int n)
{
	return atomic_exchange(&fail_private_maps, n);
}

void *os_map_private(size_t len)
{
	void *p;

	if (consume_failure(&fail_private_maps)) {
		errno = ENOMEM;
		return NULL;
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

void os_unmap(void *addr, size_t len)
{
	if (addr)
		munmap(addr, len);
}

/* ---- reporting backends ---- */

static int madv(void *addr, size_t len, int advice)
{
	return madvise(addr, len, advice) ? -errno : 0;
}

static int report_dontneed(void *ctx, void *addr, size_t len)
{
	(void)ctx;
	return madv(addr, len, MADV_DONTNEED);
}

static int report_free(void *ctx, void *addr, size_t len)
{
	(void)ctx;
	return madv(addr, len, MADV_FREE);
}

static uint64_t now_ms(void *ctx)
{
	(void)ctx;
	return os_now_ms();
}

static void wait_until(void *ctx, pthread_cond_t *cond, pthread_mutex_t *lock, uint64_t deadline_ms)
{
	(void)ctx;
	os_cond_wait_until(cond, lock, deadline_ms);
}

const struct zp_backend os_backend_dontneed = {"madv_dontneed", report_dontneed, true, now_ms, NULL, wait_until};
const struct zp_backend os_backend_free = {"madv_free", report_free, false, now_ms, NULL, wait_until};

static bool zero_fill_verdict;
static pthread_once_t zero_fill_once = PTHREAD_ONCE_INIT;

static void zero_fill_test(void)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	volatile char *p = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return; /* verdict stays false: not trusted */
	/* under mlockall(MCL_FUTURE) the page is locked and madvise() would
	 * refuse it: the verdict, kept for the process, would say the OS does
	 * not zero-fill */
	munlock((void *)p, pg);
	memset((void *)p, 0x5a, pg);
	zero_fill_verdict = !madvise((void *)p, pg, MADV_DONTNEED) && p[0] == 0 && p[pg - 1] == 0;
	munmap((void *)p, pg);
}

bool os_discard_zero_fills(void)
{
	pthread_once(&zero_fill_once, zero_fill_test);
	return zero_fill_verdict;
}

/* ---- the CPU ---- */

/* "32768K" and the like; 0 when it is not a size. */
static size_t parse_cache_size(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	if (end == s)
		return 0;
	if (*end == 'K')
		v <<= 10;
	else if (*end == 'M')
		v <<= 20;
	else if (*end != '\n' && *end)
		return 0;
	return (size_t)v;
}

static size_t read_cache_attr(unsigned idx, const char *attr, char *buf, size_t len)
{
	char path[96];
	ssize_t n;
	int fd;

	/* open and read, not stdio: the drop-in creates its arena from inside
	 * malloc, where fopen's own malloc would come back to it */
	static const char dir[] = "/sys/devices/system/cpu/cpu0/cache/index";
	size_t k = sizeof(dir) - 1, alen = strlen(attr);

	if (idx > 9 || k + 2 + alen + 1 > sizeof(path))
		return 0;
	memcpy(path, dir, k);
	path[k++] = (char)('0' + idx);
	path[k++] = '/';
	memcpy(path + k, attr, alen + 1);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	return (size_t)n;
}

static size_t llc_bytes;
static pthread_once_t llc_once = PTHREAD_ONCE_INIT;

static void llc_read(void)
{
	unsigned best_level = 0;
	size_t best = 0;

	/* sysfs only: glibc's sysconf(_SC_LEVEL3_CACHE_SIZE) can be 10x too
	 * large in a VM (320 MiB on the machine the defaults were measured on,
	 * whose sysfs says 32 MiB) */
	for (unsigned i = 0; i < 8; i++) {
		char buf[32];
		unsigned level;
		size_t size;

		if (!read_cache_attr(i, "level", buf, sizeof(buf)))
			break;
		level = (unsigned)strtoul(buf, NULL, 10);
		if (!read_cache_attr(i, "size", buf, sizeof(buf)) || !(size = parse_cache_size(buf)))
			continue;
		if (level > best_level || (level == best_level && size > best)) {
			best_level = level;
			best = size;
		}
	}
	llc_bytes = best;
}

size_t os_llc_bytes(void)
{
	pthread_once(&llc_once, llc_read);
	return llc_bytes;
}

/* ---- time ---- */

uint64_t os_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t os_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int os_cond_init(pthread_cond_t *cond)
{
	pthread_condattr_t at;
	int err = pthread_condattr_init(&at);

	if (err)
		return err;
	err = pthread_condattr_setclock(&at, CLOCK_MONOTONIC);
	if (!err)
		err = pthread_cond_init(cond, &at);
	pthread_condattr_destroy(&at);
	return err;
}

void os_cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *lock, uint64_t deadline_ms)
{
	struct timespec ts = {(time_t)(deadline_ms / 1000), (long)(deadline_ms % 1000) * 1000000};

	pthread_cond_timedwait(cond, lock, &ts);
}

/* ---- moving pages ---- */

/* zp_test_fail_next_move(): how the next move fails (0: it does not) */
static _Atomic int fail_next_move;

void zp_test_fail_next_move(int how)
{
	atomic_store(&fail_next_move, how);
}

#ifdef MREMAP_DONTUNMAP
/*
 * Older kernels unmap the target of mremap(MREMAP_FIXED) before they check
 * the source, and then refuse a source that spans two mappings (EFAULT),
 * which earlier moves make: the target is left a hole, which another
 * thread's mmap() may fill before anyone could map it again.  Moves are
 * made only where a probe, once per process, shows the kernel does not do
 * that: a source of two mappings (the second page read-only, so they
 * cannot merge) moved onto a scratch target; the move may succeed or be
 * refused, but the target must still be mapped after it.
 */
static bool moves_safe;
static pthread_once_t moves_once = PTHREAD_ONCE_INIT;

static void probe_moves(void)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	char *src = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *dst = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (src != MAP_FAILED && dst != MAP_FAILED && !mprotect(src + pg, pg, PROT_READ)) {
		void *r = mremap(src, 2 * pg, 2 * pg, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, dst);

		moves_safe = r == dst || !msync(dst, 2 * pg, MS_ASYNC);
	}
	if (src != MAP_FAILED)
		munmap(src, 2 * pg);
	if (dst != MAP_FAILED)
		munmap(dst, 2 * pg);
}
#endif

bool os_moves_supported(void)
{
#ifdef MREMAP_DONTUNMAP
	pthread_once(&moves_once, probe_moves);
	return moves_safe;
#else
	return false;
#endif
}

/*
 * Move the pages of [from, from + len) to [to, to + len), both inside one
 * private anonymous mapping, without copying: mremap(MREMAP_DONTUNMAP)
 * (Linux 5.7) moves the page tables and leaves [from, ...) mapped and
 * empty, so it reads zero at the next touch, as after MADV_DONTNEED.  0, or
 * -errno with [from, ...) as it was and [to, ...) mapped, its contents
 * undefined: EINVAL where the kernel has no such move or unmaps a target
 * before it checks the source (probe_moves()).  Should a failed move still
 * leave part of the target unmapped, it is mapped again, empty, with
 * MAP_FIXED_NOREPLACE, which never takes over a mapping that another
 * thread put there meanwhile; if that fails, -ENOTRECOVERABLE: the target
 * may not be written, and the arena has lost those pages' mapping (nothing
 * here can give it back).
 */
int os_move_pages(void *from, void *to, size_t len, bool hugepages)
{
#ifdef MREMAP_DONTUNMAP
	void *r;
	int err;

	if (!os_moves_supported())
		return -EINVAL;
	switch (atomic_exchange(&fail_next_move, 0)) {
	case 2: /* and another thread maps a page where the target began */
		munmap(to, len);
		mmap(to, (size_t)sysconf(_SC_PAGESIZE), PROT_READ | PROT_WRITE,
		     MAP_FIXED_NOREPLACE | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		r = MAP_FAILED;
		errno = EFAULT;
		break;
	case 1: /* as an older kernel does */
		munmap(to, len);
		r = MAP_FAILED;
		errno = EFAULT;
		break;
	default:
		r = mremap(from, len, len, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, to);
	}
	if (r == to)
		return 0;
	err = errno;
	/* msync() fails with ENOMEM where a page of the range is unmapped */
	if (msync(to, len, MS_ASYNC) && errno == ENOMEM) {
		r = mmap(to, len, PROT_READ | PROT_WRITE, MAP_FIXED_NOREPLACE | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
			 -1, 0);
		if (r != to) {
			if (r != MAP_FAILED)
				munmap(r, len); /* a kernel before 4.17 took it as a hint */
			return -ENOTRECOVERABLE;
		}
		madvise(to, len, hugepages ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	}
	return -err;
#else
	(void)from, (void)to, (void)len, (void)hugepages;
	return -EINVAL;
#endif
}

/* ---- asymmetric fences ---- */

/*
 * membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) makes every running thread
 * of the process execute a full memory barrier before it returns, so that
 * the fast path of a per-thread cache (tcache.c) needs only a compiler
 * barrier.  Registration is per process (and is made again in a forked
 * child); a kernel older than 4.14, or a seccomp filter, refuses it and
 * the caches then use a full fence of their own.
 */
bool os_membarrier_register(void)
{
	return syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
}

int os_membarrier(void)
{
	return syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0 ? 0 : -errno;
}

void os_backoff(unsigned *n)
{
	if ((*n)++ < 64) {
		sched_yield();
	} else {
		/* sched_yield() runs nothing of lower priority (SCHED_FIFO):
		 * sleep, so a preempted thread we wait for gets the CPU.  Not a
		 * cancellation point: lock_all() waits here holding tc_lock, and
		 * a thread cancelled there would keep it for good. */
		struct timespec ts = {0, 20000};
		int old;

		pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
		nanosleep(&ts, NULL);
		pthread_setcancelstate(old, NULL);
	}
}

/* ---- threads ---- */

static _Atomic int fail_starts, fail_err;

void zp_test_fail_thread_start(int n, int err)
{
	fail_err = err;
	fail_starts = n;
}

/* The background thread's stack: its deepest path (a pass putting a block
 * back) used under 8 KiB, TLS and libc's lazy binding included; the
 * default (RLIMIT_STACK, often 8 MiB) would be reserved for nothing, and
 * committed whole under mlockall(MCL_FUTURE).  glibc carves the thread's
 * static TLS (every module loaded at startup, and the surplus dlopen()
 * may use) and its own descriptor out of the top of the size asked for,
 * so the size asked for is THREAD_STACK beyond os_static_tls_bound():
 * without it a program with 500 KiB of __thread data left the thread about
 * 7 KiB, and one with a little more was refused (EINVAL) and got the
 * default.  Should pthread_create() refuse the size all the same, the
 * thread gets the default.
 * ASan's frames are larger.  Under TSan the default stays, a workaround:
 * GCC 12's libtsan aborted a forked child whose new thread got the id of
 * a dead parent thread ("dup thread with used id"), which glibc gives it
 * by reusing that thread's stack; with the default size test_fork.tsan
 * passes, for a reason not pinned down. */
#if defined(__SANITIZE_THREAD__)
#define THREAD_STACK 0
#elif defined(__SANITIZE_ADDRESS__)
#define THREAD_STACK ((size_t)1 << 20)
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define THREAD_STACK 0
#elif __has_feature(address_sanitizer)
#define THREAD_STACK ((size_t)1 << 20)
#endif
#endif
#ifndef THREAD_STACK
#define THREAD_STACK ((size_t)512 << 10)
#endif

static size_t tls_bound;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;

static int add_tls(struct dl_phdr_info *info, size_t size, void *data)
{
	size_t *sum = data;

	(void)size;
	for (unsigned i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type == PT_TLS)
			*sum += ph->p_memsz + ph->p_align;
	}
	return 0;
}

/* Once, when the library is loaded (or at the first thread start, if that
 * comes first: a constructor that ran before ours): glibc's own figure,
 * __pthread_get_minstack() (a page, the static TLS with its surplus, and
 * PTHREAD_STACK_MIN; GLIBC_PRIVATE, looked up, as Rust's runtime does), or
 * where there is none, every loaded module's TLS segment and 64 KiB.  Not
 * at each thread start: that would take the loader's lock, which a forked
 * child may find held forever (a parent thread was in dl_iterate_phdr() or
 * dlopen() at the fork), and which a thread inside a dl_iterate_phdr()
 * callback holds while it may wait for the drop-in's first allocation. */
static void measure_tls(void)
{
	size_t (*minstack)(const pthread_attr_t *);
	size_t pg = (size_t)sysconf(_SC_PAGESIZE), r = 0;
	void *sym = dlsym(RTLD_DEFAULT, "__pthread_get_minstack");
	pthread_attr_t attr;

	memcpy(&minstack, &sym, sizeof(minstack)); /* a function pointer from a data pointer */
	if (minstack && !pthread_attr_init(&attr)) {
		r = minstack(&attr);
		pthread_attr_destroy(&attr);
	} else {
		dl_iterate_phdr(add_tls, &r);
		r += (size_t)64 << 10;
	}
	tls_bound = (r + pg - 1) & ~(pg - 1);
}

size_t os_static_tls_bound(void)
{
	pthread_once(&tls_once, measure_tls);
	return tls_bound;
}

/* Every signal but those a fault raises in this very thread: blocked,
 * they would kill the process instead of reaching its handler. */
static void blockable(sigset_t *set)
{
	sigfillset(set);
	sigdelset(set, SIGSEGV);
	sigdelset(set, SIGBUS);
	sigdelset(set, SIGFPE);
	sigdelset(set, SIGILL);
	sigdelset(set, SIGTRAP);
	sigdelset(set, SIGSYS);
}

void os_block_signals(sigset_t *old)
{
	sigset_t all;

	blockable(&all);
	pthread_sigmask(SIG_BLOCK, &all, old);
}

/* Unblock only what os_block_signals() added: a mask change made in
 * between (another library's fork handler) stays. */
void os_restore_signals(const sigset_t *old)
{
	sigset_t added;

	blockable(&added);
	for (int s = 1; s < SIGRTMAX + 1; s++)
		if (sigismember(old, s) == 1)
			sigdelset(&added, s);
	pthread_sigmask(SIG_UNBLOCK, &added, NULL);
}

int os_thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	pthread_attr_t attr;
	int err;

	if (consume_failure(&fail_starts))
		return fail_err;
	err = pthread_attr_init(&attr);
	if (err)
		return err;
	/* should the size be refused, the thread gets the default */
	if (THREAD_STACK != 0)
		pthread_attr_setstacksize(&attr, THREAD_STACK + os_static_tls_bound());
	/* the new thread inherits this mask: the fault signals unblocked even
	 * where the caller blocks them */
	blockable(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(t, &attr, fn, arg);
	if (err && THREAD_STACK != 0) /* the size refused all the same (EINVAL), or too large to map */
		err = pthread_create(t, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	return err;
}

/* ---- fork ---- */

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void atfork_register(void)
{
	pthread_atfork(arenas_fork_prepare, arenas_fork_parent, arenas_fork_child);
}

void os_atfork_init(void)
{
	pthread_once(&atfork_once, atfork_register);
}

/*
 * Register at load time, before main() registers anything: prepare
 * handlers run in reverse order of registration, parent and child handlers
 * in order, so an application's own handlers then run while zpage holds
 * none of its locks (and may call zpage).
 */
__attribute__((constructor)) static void atfork_at_load(void)
{
	os_atfork_init();
	os_static_tls_bound(); /* here, not at a thread start (measure_tls()) */
}
