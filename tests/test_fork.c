/* SPDX-License-Identifier: MIT */
/*
 * fork() while other threads use an arena.
 *
 * A child must never hang (every child arms alarm(10) first: a hang is a
 * death by SIGALRM, reported as a failure with the step it hung in), must
 * get back every page that was free in the parent, including the blocks a
 * reporting or pre-zeroing pass held isolated at the fork, must keep the
 * blocks parent threads held (allocated, or in the middle of an allocation
 * or a free), must run a background thread of its own when the arena has
 * one, and zp_arena_destroy() in the child must not touch the parent's.
 *
 * What parent threads held at the fork is known exactly: each worker keeps
 * two counters in one 4 KiB page, updated in program order around every
 * call (inflight: a block being allocated or freed; held: blocks it owns).
 * fork copies that page at one instant, and the arena's metadata is frozen
 * by the fork handlers (every lock held), so in the child
 *	nr_pages - sum(held + inflight) <= free pages <= nr_pages - sum(held).
 *
 * Under ThreadSanitizer the children start threads after a multi-threaded
 * fork, which needs die_after_fork=0 (below).
 */
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

#if defined(__SANITIZE_THREAD__)
#define T_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define T_TSAN 1
#endif
#endif
#ifndef T_TSAN
#define T_TSAN 0
#endif

/* ThreadSanitizer: children of this multi-threaded process start threads
 * (the arena's background thread, test threads).  Harmless elsewhere. */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
	return "die_after_fork=0";
}

/* ---- helpers ---- */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t xs(uint64_t *r) /* xorshift64 */
{
	*r ^= *r << 13;
	*r ^= *r >> 7;
	*r ^= *r << 17;
	return *r;
}

static bool words_zero(const void *p, size_t len)
{
	const uint64_t *w = p;
	uint64_t acc = 0;

	for (size_t i = 0; i < len / sizeof(*w); i++)
		acc |= w[i];
	return acc == 0;
}

/*
 * The first thing every child does.  A hang becomes a death by SIGALRM.
 *
 * ThreadSanitizer (GCC 12's libtsan) still counts the parent's threads as
 * alive in a child, while glibc hands their cached stacks, and so their
 * pthread_t values, to the child's new threads: joining such a thread (as
 * zp_arena_destroy() joins the child's background thread) then dies with
 * "dup thread with used id".  So under TSan a child asks for thread stacks
 * 64 KiB larger than any earlier thread of its line had: no cached stack
 * fits, every new thread gets a fresh one.
 */
static void child_start(void)
{
	alarm(10);
	if (T_TSAN) {
		pthread_attr_t at;
		size_t sz;

		if (pthread_getattr_default_np(&at))
			return;
		if (!pthread_attr_getstacksize(&at, &sz) && !pthread_attr_setstacksize(&at, sz + ((size_t)64 << 10)))
			pthread_setattr_default_np(&at);
		pthread_attr_destroy(&at);
	}
}

/* In a child: say why on stderr and exit with @code. */
__attribute__((noreturn, format(printf, 2, 3))) static void child_fail(int code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	T_DIAG("child %d: %s (exit %d)", (int)getpid(), msg, code);
	_exit(code);
}

/* Wait for @pid; record a failure unless it exited 0.  Returns the raw
 * status, or -1 when waitpid failed. */
static int wait_child(pid_t pid, const char *what)
{
	int st;
	pid_t r;

	while ((r = waitpid(pid, &st, 0)) < 0 && errno == EINTR)
		;
	if (r != pid) {
		T_REPORT("%s: waitpid: %s", what, strerror(errno));
		return -1;
	}
	if (WIFSIGNALED(st))
		T_REPORT("%s: child killed by signal %d (%s)%s", what, WTERMSIG(st), strsignal(WTERMSIG(st)),
			 WTERMSIG(st) == SIGALRM ? ": it hung for 10 s" : "");
	else if (WEXITSTATUS(st))
		T_REPORT("%s: child exited with %d", what, WEXITSTATUS(st));
	return st;
}

static bool wait_reported(struct zp_arena *a, uint64_t at_least, unsigned ms)
{
	uint64_t end = now_ms() + ms;

	while (t_stats(a).pages_reported < at_least) {
		if (now_ms() > end)
			return false;
		usleep(2000);
	}
	return true;
}

/* Every order-0 page the arena can hand out now, into @out (at most @max;
 * one more is a failure the caller sees as a count above @max).  errno is
 * ENOMEM at the end unless something else went wrong. */
static size_t take_all(struct zp_arena *a, zp_gfp_t gfp, void **out, size_t max)
{
	size_t n = 0;
	void *p;

	while ((p = zp_alloc_pages(a, gfp, 0, ZP_USER_ADDR_NONE))) {
		if (n == max)
			return max + 1;
		out[n++] = p;
	}
	return n;
}

static bool give_all(struct zp_arena *a, void **p, size_t n)
{
	bool ok = true;

	for (size_t i = 0; i < n; i++)
		ok &= zp_free_pages(a, p[i], 0) == 0;
	return ok;
}

/*
 * What a pass held at each fork: read by our own prepare handler, which
 * runs after the library's (handlers registered earlier run later), so with
 * every lock of the arena held.
 */

/* ---- 1. fork_stress ---- */

#define FS_PAGES      4096
#define FS_WORKERS    2
#define FS_SLOTS      16
#define FS_FORKS      200
#define FS_MAX_FAILED 3 /* stop forking after this many bad children */

/* One page, written only by its workers, in program order. */
static struct fs_counters {
	struct {
		_Atomic long held;     /* pages of the blocks this worker owns */
		_Atomic long inflight; /* pages of a block being allocated or freed */
	} w[FS_WORKERS];
} fs_cnt __attribute__((aligned(4096)));
_Static_assert(sizeof(fs_cnt) <= 4096, "the counters must fit one page");

static struct {
	struct zp_arena *a;
	_Atomic int stop;
	_Atomic long errors, allocs, enomem, passes;
} fs;

enum fs_step { FS_START, FS_STATS, FS_TAKE, FS_GIVE, FS_REPORT, FS_CHECK, FS_BIG, FS_DESTROY, FS_DONE };
static const char *const fs_step_name[] = {
	[FS_START] = "start",
	[FS_STATS] = "zp_arena_stats",
	[FS_TAKE] = "allocating every page",
	[FS_GIVE] = "freeing them",
	[FS_REPORT] = "zp_arena_report",
	[FS_CHECK] = "zp_arena_check",
	[FS_BIG] = "order 9/10 allocation",
	[FS_DESTROY] = "zp_arena_destroy",
	[FS_DONE] = "exit",
};

/* What each child saw, in memory shared with the parent. */
struct fs_record {
	_Atomic int step;
	long held, inflight, got;
	size_t isolated;
};
static struct fs_record *fs_rec;

static void *fs_alloc(int id, unsigned *order, uint64_t *r)
{
	uint64_t x = xs(r);
	unsigned o = x % 16 == 0 ? 9 : (unsigned)((x >> 4) % 7);
	zp_gfp_t gfp = (x >> 8) & 1 ? ZP_GFP_ZERO : 0;
	uintptr_t uaddr = (x >> 9) & 1 ? ZP_USER_ADDR_NONE : (uintptr_t)(x >> 20);
	long pages = 1L << o;
	char *p;

	atomic_store(&fs_cnt.w[id].inflight, pages);
	p = zp_alloc_pages(fs.a, gfp, o, uaddr);
	if (p)
		atomic_store(&fs_cnt.w[id].held, atomic_load(&fs_cnt.w[id].held) + pages);
	else if (errno == ENOMEM)
		fs.enomem++;
	else
		fs.errors++;
	atomic_store(&fs_cnt.w[id].inflight, 0);
	if (p) {
		fs.allocs++;
		if (gfp && !words_zero(p, ZP_PAGE_SIZE << o))
			fs.errors++;
		memset(p, 0x5a, ZP_PAGE_SIZE << o);
	}
	*order = o;
	return p;
}

/* The block moves from held to inflight before the call (a snapshot in
 * between counts it twice: the lower bound only gets looser) and leaves
 * inflight when the call has returned. */
static void fs_free(int id, void *p, unsigned o)
{
	long pages = 1L << o;

	atomic_store(&fs_cnt.w[id].inflight, pages);
	atomic_store(&fs_cnt.w[id].held, atomic_load(&fs_cnt.w[id].held) - pages);
	if (zp_free_pages(fs.a, p, o))
		fs.errors++;
	atomic_store(&fs_cnt.w[id].inflight, 0);
}

static void *fs_worker(void *arg)
{
	int id = (int)(uintptr_t)arg;
	uint64_t r = 0x9e3779b97f4a7c15ull * (uint64_t)(id + 1);
	void *p[FS_SLOTS] = {0};
	unsigned o[FS_SLOTS] = {0};

	while (!atomic_load(&fs.stop)) {
		unsigned i = (unsigned)(xs(&r) % FS_SLOTS);

		if (p[i]) {
			fs_free(id, p[i], o[i]);
			p[i] = NULL;
		} else {
			p[i] = fs_alloc(id, &o[i], &r);
		}
	}
	for (int i = 0; i < FS_SLOTS; i++)
		if (p[i])
			fs_free(id, p[i], o[i]);
	return NULL;
}

static void *fs_passes(void *arg)
{
	(void)arg;
	while (!atomic_load(&fs.stop)) {
		if (zp_arena_report(fs.a) < 0 || zp_arena_prezero(fs.a, (size_t)1 << 20) < 0)
			fs.errors++;
		fs.passes++;
	}
	return NULL;
}

/* Half the forks are aimed at a pass in flight: wait (up to 20 ms) until a
 * pass holds blocks, then fork at once. */
static void fs_aim_at_a_pass(void)
{
	uint64_t end = now_ms() + 20;

	while (!zp_test_isolated_pages(fs.a) && now_ms() < end)
		;
}

static void *fs_child_pages[FS_PAGES];
static unsigned char fs_child_free[FS_PAGES];

/* Is some aligned block of @order made only of pages the child found free? */
static bool fs_block_can_exist(unsigned order)
{
	size_t n = (size_t)1 << order;

	for (size_t b = 0; b < FS_PAGES; b += n) {
		size_t i = 0;

		while (i < n && fs_child_free[b + i])
			i++;
		if (i == n)
			return true;
	}
	return false;
}

__attribute__((noreturn)) static void fs_child(struct fs_record *rec)
{
	struct zp_arena *a = fs.a;
	long held = 0, inflight = 0, lo, hi;
	struct zp_stats s0, s1;
	size_t got;
	long rc;

	child_start();
	for (int w = 0; w < FS_WORKERS; w++) {
		held += atomic_load(&fs_cnt.w[w].held);
		inflight += atomic_load(&fs_cnt.w[w].inflight);
	}
	rec->held = held;
	rec->inflight = inflight;
	rec->isolated = a->fork_putback_pages; /* what the passes held, put back by the fork handler */
	lo = FS_PAGES - held - inflight;
	hi = FS_PAGES - held;

	rec->step = FS_STATS;
	zp_arena_stats(a, &s0);

	rec->step = FS_TAKE;
	errno = 0;
	got = take_all(a, ZP_GFP_ZERO, fs_child_pages, FS_PAGES);
	rec->got = (long)got;
	if (got > FS_PAGES)
		child_fail(21, "more than %d pages allocated from a %d-page arena", FS_PAGES, FS_PAGES);
	if (errno != ENOMEM)
		child_fail(11, "allocation failed with %s, not ENOMEM, after %zu pages", strerror(errno), got);
	if ((long)got < lo || (long)got > hi)
		child_fail(10,
			   "%zu pages free, expected %ld..%ld (parent threads held %ld + %ld in flight; a pass held "
			   "%zu)",
			   got, lo, hi, held, inflight, rec->isolated);
	if (s0.nr_free != got)
		child_fail(13, "zp_arena_stats said %zu free, %zu could be allocated", s0.nr_free, got);
	for (size_t i = 0; i < got; i++) {
		if (!words_zero(fs_child_pages[i], ZP_PAGE_SIZE))
			child_fail(12, "ZP_GFP_ZERO page %zu does not read zero", t_pfn(a, fs_child_pages[i]));
		fs_child_free[t_pfn(a, fs_child_pages[i])] = 1;
	}

	rec->step = FS_GIVE;
	if (!give_all(a, fs_child_pages, got))
		child_fail(14, "zp_free_pages refused a page it handed out");

	rec->step = FS_REPORT;
	rc = zp_arena_report(a);
	if (rc < 0)
		child_fail(15, "zp_arena_report returned %ld", rc);

	rec->step = FS_CHECK;
	if (zp_arena_check(a))
		child_fail(16, "zp_arena_check failed");
	zp_arena_stats(a, &s1);
	if (s1.nr_free != got)
		child_fail(17, "%zu pages free after freeing them all, expected %zu", s1.nr_free, got);

	/* exact: a block of order 9 / 10 exists iff an aligned run of free
	 * pages that long does (merging is complete, the caches are drained
	 * before an allocation fails) */
	rec->step = FS_BIG;
	for (unsigned o = 9; o <= 10; o++) {
		bool can = fs_block_can_exist(o);
		char *p = zp_alloc_pages(a, ZP_GFP_ZERO, o, ZP_USER_ADDR_NONE);

		if (!!p != can)
			child_fail(18, "order %u allocation %s, but the free pages %s one", o,
				   p ? "succeeded" : "failed", can ? "hold" : "cannot hold");
		if (p && !words_zero(p, ZP_PAGE_SIZE << o))
			child_fail(19, "ZP_GFP_ZERO order %u block does not read zero", o);
		if (p && zp_free_pages(a, p, o))
			child_fail(14, "zp_free_pages refused an order %u block", o);
	}
	rec->step = FS_CHECK;
	if (zp_arena_check(a))
		child_fail(20, "zp_arena_check failed after the large blocks");

	rec->step = FS_DESTROY;
	zp_arena_destroy(a);
	rec->step = FS_DONE;
	_exit(0);
}

static void fork_stress(void)
{
	struct zp_config cfg = {.size = (size_t)FS_PAGES * ZP_PAGE_SIZE,
				.max_order = 10,
				.flags = ZP_REPORT | ZP_PREZERO,
				.report_delay_ms = 2,
				.prezero_bytes = (size_t)2 << 20};
	size_t rec_len = sizeof(struct fs_record) * FS_FORKS;
	int forks = 0, failed = 0, with_isolated = 0, with_inflight = 0;
	long gmin = FS_PAGES, gmax = 0;
	uint64_t t0, r = 0x2545f4914f6cdd1dull;
	pthread_t t[FS_WORKERS + 1];

	fs.a = zp_arena_create(&cfg);
	ASSERT(fs.a);
	fs_rec = mmap(NULL, rec_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT(fs_rec != MAP_FAILED);
	fs.stop = 0;
	for (int i = 0; i < FS_WORKERS; i++)
		pthread_create(&t[i], NULL, fs_worker, (void *)(uintptr_t)i);
	pthread_create(&t[FS_WORKERS], NULL, fs_passes, NULL);
	usleep(20 * 1000);

	t0 = now_ms();
	for (int i = 0; i < FS_FORKS; i++) {
		struct fs_record *rec = &fs_rec[i];
		char what[64];
		pid_t pid;
		int st;

		if (i & 1)
			usleep((useconds_t)(xs(&r) % 1000));
		else
			fs_aim_at_a_pass();
		pid = fork();
		if (pid < 0) {
			T_REPORT("fork: %s", strerror(errno));
			break;
		}
		if (pid == 0)
			fs_child(rec);
		forks++;
		snprintf(what, sizeof(what), "fork %d", i);
		st = wait_child(pid, what);
		if (st != 0) {
			int step = rec->step;

			T_DIAG("  fork %d: child was at step \"%s\"; parent threads held %ld + %ld in flight, a pass "
			       "held %zu, %ld pages allocated",
			       i, step >= 0 && step <= FS_DONE ? fs_step_name[step] : "?", rec->held, rec->inflight,
			       rec->isolated, rec->got);
			if (++failed >= FS_MAX_FAILED) {
				T_DIAG("  stopping after %d failed children", failed);
				break;
			}
			continue;
		}
		with_isolated += rec->isolated != 0;
		with_inflight += rec->inflight != 0;
		if (rec->got < gmin)
			gmin = rec->got;
		if (rec->got > gmax)
			gmax = rec->got;
	}
	fs.stop = 1;
	for (int i = 0; i <= FS_WORKERS; i++)
		pthread_join(t[i], NULL);

	T_NOTE("fork_stress: %d forks in %.1f s (%ld allocations, %ld ENOMEM, %ld pass pairs); at the fork a pass "
	       "held blocks %d times, a worker was mid-call %d times; children got %ld..%ld of %d pages",
	       forks, (double)(now_ms() - t0) / 1000, (long)fs.allocs, (long)fs.enomem, (long)fs.passes, with_isolated,
	       with_inflight, gmin, gmax, FS_PAGES);
	EXPECT(forks >= FS_FORKS || failed);
	EXPECT_EQ(fs.errors, 0);
	EXPECT_EQ(atomic_load(&fs_cnt.w[0].held) + atomic_load(&fs_cnt.w[1].held), 0);
	EXPECT_EQ(zp_arena_check(fs.a), 0);
	EXPECT_EQ(t_stats(fs.a).nr_free, FS_PAGES);
	zp_arena_destroy(fs.a);
	munmap(fs_rec, rec_len);
}

/* ---- a reporting backend that holds its pass until a gate opens ---- */

struct gate {
	_Atomic int entered; /* report calls that reached the gate */
	_Atomic int open;    /* 1: let them through */
	_Atomic long calls;
};
static struct gate gate;

static int gate_report(void *ctx, void *addr, size_t len)
{
	struct gate *g = ctx;

	g->entered++;
	while (!atomic_load(&g->open))
		usleep(1000);
	g->calls++;
	return madvise(addr, len, MADV_DONTNEED) ? -errno : 0; /* a real zero-fill */
}

static uint64_t gate_now(void *ctx)
{
	(void)ctx;
	return 0;
}

/* A 2048-page arena without background threads, all of it dirty (two
 * order-10 blocks), behind the gate. */
static struct zp_arena *gated_arena(void)
{
	struct zp_arena *a = t_arena(2048, 10, 0);
	struct zp_backend b = {.name = "gate", .report = gate_report, .zeroes = true, .now_ms = gate_now, .ctx = &gate};

	t_dirty(a, 10, 2);
	zp_test_set_backend(a, &b);
	gate.entered = gate.open = 0;
	gate.calls = 0;
	return a;
}

static _Atomic long gated_result;

static void *gated_report(void *arg)
{
	gated_result = zp_arena_report(arg);
	return NULL;
}

static bool wait_entered(unsigned ms)
{
	uint64_t end = now_ms() + ms;

	while (!gate.entered) {
		if (now_ms() > end)
			return false;
		usleep(1000);
	}
	return true;
}

/*
 * The child of a fork taken while a report pass holds every block of the
 * arena isolated (its system call stuck) gets them all back: free, listed,
 * allocatable, and reported again by the child's own pass.
 */
static void *child_pages[2048];

__attribute__((noreturn)) static void isolated_child(struct zp_arena *a, bool one_big)
{
	struct zp_stats s;
	size_t got;
	long rc;

	child_start();
	zp_arena_stats(a, &s);
	if (s.nr_free != 2048)
		child_fail(2, "zp_arena_stats: %zu free, expected 2048", s.nr_free);
	if (one_big) {
		/* the blocks came back merged: a whole order-10 block, twice */
		char *p = zp_alloc_pages(a, 0, 10, ZP_USER_ADDR_NONE), *q = zp_alloc_pages(a, 0, 10, ZP_USER_ADDR_NONE);

		if (!p || !q)
			child_fail(3, "order-10 allocation failed: %s", strerror(errno));
		if (zp_free_pages(a, p, 10) || zp_free_pages(a, q, 10))
			child_fail(5, "zp_free_pages refused an order-10 block");
	}
	errno = 0;
	got = take_all(a, 0, child_pages, 2048);
	if (got != 2048)
		child_fail(3, "%zu of 2048 pages could be allocated (%s)", got, strerror(errno));
	if (zp_arena_check(a))
		child_fail(4, "zp_arena_check failed with every page allocated");
	if (!give_all(a, child_pages, got))
		child_fail(5, "zp_free_pages refused a page");
	zp_test_drain_pcp(a);
	gate.open = 1; /* the child's copy: its own pass goes through */
	rc = zp_arena_report(a);
	if (rc != 2048)
		child_fail(6,
			   "the child's report pass reported %ld pages, expected 2048 (the parent's pass never "
			   "finished)",
			   rc);
	if (zp_arena_check(a))
		child_fail(7, "zp_arena_check failed after the child's pass");
	zp_arena_destroy(a);
	_exit(0);
}

/* Start a gated report pass on @a in *@t and wait until it holds its
 * blocks; false (pass finished, arena destroyed, failure recorded) if it
 * never reached the backend. */
static bool start_gated_pass(struct zp_arena *a, pthread_t *t)
{
	pthread_create(t, NULL, gated_report, a);
	if (wait_entered(5000))
		return true;
	gate.open = 1;
	pthread_join(*t, NULL);
	T_REPORT("the report pass never reached the backend");
	zp_arena_destroy(a);
	return false;
}

static void child_gets_isolated_blocks_back(void)
{
	struct zp_arena *a = gated_arena();
	pthread_t t;
	pid_t pid;

	if (!start_gated_pass(a, &t))
		return;
	EXPECT_EQ(zp_test_isolated_pages(a), 2048); /* the pass holds every page, outside any lock */
	EXPECT_EQ(t_stats(a).nr_free, 2048);
	pid = fork();
	if (pid == 0)
		isolated_child(a, false);
	gate.open = 1;
	pthread_join(t, NULL);
	EXPECT(pid > 0);
	if (pid > 0)
		wait_child(pid, "child of a fork during a report pass");
	EXPECT_EQ(gated_result, 2048); /* the parent's pass finished normally */
	EXPECT_EQ(gate.calls, 2);
	EXPECT_EQ(t_stats(a).nr_free, 2048);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/*
 * The same, with a second thread inside zp_alloc_pages() waiting for the
 * pass to put its blocks back (the slow path: nothing is free but what the
 * pass holds).  The child has neither thread: it gets every page back, and
 * its condition variables work (a put-back broadcasts on the one the
 * parent's allocation was waiting on).
 */
static _Atomic int waiter_done;
static void *_Atomic waiter_page;

static void *gated_waiter(void *arg)
{
	waiter_page = zp_alloc_pages(arg, 0, 0, ZP_USER_ADDR_NONE);
	waiter_done = 1;
	return NULL;
}

static void fork_while_allocation_waits_for_a_pass(void)
{
	struct zp_arena *a = gated_arena();
	pthread_t t, w;
	pid_t pid;

	if (!start_gated_pass(a, &t))
		return;
	waiter_done = 0;
	waiter_page = NULL;
	pthread_create(&w, NULL, gated_waiter, a);
	usleep(100 * 1000);
	EXPECT(!waiter_done); /* waiting for the pass, not failing with ENOMEM */
	pid = fork();
	if (pid == 0)
		isolated_child(a, true);
	gate.open = 1;
	pthread_join(t, NULL);
	pthread_join(w, NULL);
	EXPECT(pid > 0);
	if (pid > 0)
		wait_child(pid, "child of a fork during a pass and a waiting allocation");
	EXPECT(waiter_page != NULL);
	if (waiter_page)
		EXPECT_EQ(zp_free_pages(a, waiter_page, 0), 0);
	EXPECT_EQ(gated_result, 2048);
	EXPECT_EQ(t_stats(a).nr_free, 2048);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/* ---- 3. the background thread in a child ---- */

/*
 * In a child: a dirty order-9 block freed is reported within 2 s (only a
 * background thread of the child's own reports), the arena checks, and the
 * child exits 0; else it exits with @code to @code + 3.
 */
__attribute__((noreturn)) static void child_reports_and_exits(struct zp_arena *a, int code)
{
	uint64_t r0 = t_stats(a).pages_reported;
	char *p = zp_alloc_pages(a, 0, 9, ZP_USER_ADDR_NONE);

	if (!p)
		child_fail(code, "order-9 allocation failed: %s", strerror(errno));
	memset(p, 0x77, ZP_PAGE_SIZE << 9);
	if (zp_free_pages(a, p, 9))
		child_fail(code + 1, "zp_free_pages refused the block");
	if (!wait_reported(a, r0 + 512, 2000))
		child_fail(code + 2, "nothing reported in 2 s: the child has no background thread (%llu -> %llu)",
			   (unsigned long long)r0, (unsigned long long)t_stats(a).pages_reported);
	if (zp_arena_check(a))
		child_fail(code + 3, "zp_arena_check failed");
	zp_arena_destroy(a); /* stops the child's thread, never joins the parent's */
	_exit(0);
}

/*
 * The child's first allocation starts a reporting thread of its own: memory
 * the child frees is reported by it (nothing else in the child reports).
 * The parent's thread goes on reporting too.
 */
static void child_restarts_background_thread(void)
{
	struct zp_config cfg = {
		.size = 2048 * ZP_PAGE_SIZE, .max_order = 10, .flags = ZP_REPORT, .report_delay_ms = 20};
	struct zp_arena *a = zp_arena_create(&cfg);
	uint64_t r0;
	pid_t pid;

	ASSERT(a);
	t_dirty(a, 9, 1);
	EXPECT(wait_reported(a, 512, 2000)); /* the parent's thread works */
	pid = fork();
	if (pid == 0) {
		child_start();
		child_reports_and_exits(a, 2);
	}
	ASSERT(pid > 0);
	r0 = t_stats(a).pages_reported;
	t_dirty(a, 9, 1);
	EXPECT(wait_reported(a, r0 + 512, 2000)); /* the parent's thread still works */
	wait_child(pid, "child with a background thread");
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/*
 * The same when the child's first call is one the inline paths could
 * serve, since the forking thread's cache survives the fork: a free, or a
 * non-zeroing allocation, of an order the caches serve.  It must go the
 * whole way, which starts the child's background thread.
 */
static void child_first_inline_call_starts_thread(void)
{
	for (int first_alloc = 0; first_alloc < 2; first_alloc++) {
		struct zp_config cfg = {
			.size = 2048 * ZP_PAGE_SIZE, .max_order = 10, .flags = ZP_REPORT, .report_delay_ms = 20};
		struct zp_arena *a = zp_arena_create(&cfg);
		char *kept, *spare;
		pid_t pid;

		ASSERT(a);
		ASSERT(a->tc_orders > 0);
		ASSERT_EQ(atomic_load(&a->fast_alloc_orders), a->tc_orders); /* open: no restart owed */
		ASSERT_EQ(atomic_load(&a->fast_free_orders), a->tc_orders);
		kept = zp_alloc_pages(a, 0, 0, ZP_USER_ADDR_NONE);
		spare = zp_alloc_pages(a, 0, 0, ZP_USER_ADDR_NONE);
		ASSERT(kept && spare);
		ASSERT_EQ(zp_free_pages(a, spare, 0), 0); /* in this thread's cache */
		pid = fork();
		if (pid == 0) {
			char *p;

			child_start();
			if (!atomic_load(&a->daemon_restart))
				child_fail(2, "no background thread to start in the child");
			if (first_alloc) {
				p = zp_alloc_pages(a, 0, 0, ZP_USER_ADDR_NONE);
				if (p != spare)
					child_fail(3, "the first allocation did not take the cached block");
			} else if (zp_free_pages(a, kept, 0)) {
				child_fail(3, "zp_free_pages refused the block");
			}
			if (atomic_load(&a->daemon_restart))
				child_fail(4, "the first %s left the background thread unstarted",
					   first_alloc ? "allocation" : "free");
			/* the restart reopens the everyday paths */
			if (atomic_load(&a->fast_alloc_orders) != a->tc_orders ||
			    atomic_load(&a->fast_free_orders) != a->tc_orders)
				child_fail(9, "the inline paths stayed closed after the restart (%u, %u of %u orders)",
					   (unsigned)atomic_load(&a->fast_alloc_orders),
					   (unsigned)atomic_load(&a->fast_free_orders), a->tc_orders);
			child_reports_and_exits(a, 5);
		}
		ASSERT(pid > 0);
		wait_child(pid, first_alloc ? "child whose first call allocates inline" :
					      "child whose first call frees inline");
		EXPECT_EQ(zp_free_pages(a, kept, 0), 0);
		EXPECT_EQ(zp_arena_check(a), 0);
		zp_arena_destroy(a);
	}
}

/*
 * An application's own atfork child handler, registered in main() before
 * any arena (see main()), allocates from an arena: zpage's handlers were
 * registered when it was loaded, so they have released its locks by then.
 */
static struct zp_arena *_Atomic handler_arena;
static int handler_result; /* in the child: 1 allocated and freed, -1 failed */

static void child_handler_uses_zpage(void)
{
	struct zp_arena *a = atomic_load(&handler_arena);
	void *p;

	if (!a)
		return;
	child_start(); /* alarm: a hang here (a lock still held) is a failure */
	p = zp_alloc_pages(a, ZP_GFP_ZERO, 0, ZP_USER_ADDR_NONE);
	handler_result = p && !zp_free_pages(a, p, 0) ? 1 : -1;
}

static void application_child_handler_calls_zpage(void)
{
	struct zp_arena *a = t_arena(256, 8, ZP_REPORT);
	pid_t pid;

	atomic_store(&handler_arena, a);
	pid = fork();
	if (pid == 0) {
		child_start();
		if (handler_result != 1)
			child_fail(2, "the application's child handler could not allocate (%d)", handler_result);
		if (zp_arena_check(a))
			child_fail(3, "zp_arena_check failed");
		zp_arena_destroy(a);
		_exit(0);
	}
	atomic_store(&handler_arena, NULL);
	EXPECT(pid > 0);
	if (pid > 0)
		EXPECT_EQ(wait_child(pid, "child whose application handler calls zpage"), 0);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/*
 * A child that never uses the arena destroys it at once: no thread of its
 * own was started, and the parent's (which does not exist in the child)
 * must not be joined.
 */
static void child_destroys_without_using(void)
{
	struct zp_config cfg = {.size = 2048 * ZP_PAGE_SIZE,
				.max_order = 10,
				.flags = ZP_REPORT | ZP_PREZERO,
				.report_delay_ms = 20,
				.prezero_bytes = (size_t)1 << 20};
	struct zp_arena *a = zp_arena_create(&cfg);
	uint64_t r0;
	pid_t pid;

	ASSERT(a);
	t_dirty(a, 9, 2);
	usleep(50 * 1000); /* the parent's thread has worked and sleeps */
	pid = fork();
	if (pid == 0) {
		struct zp_stats s;

		child_start();
		zp_arena_stats(a, &s);
		if (s.nr_free != s.nr_pages)
			child_fail(2, "%zu of %zu pages free", s.nr_free, s.nr_pages);
		if (zp_arena_check(a))
			child_fail(3, "zp_arena_check failed");
		zp_arena_destroy(a);
		_exit(0);
	}
	ASSERT(pid > 0);
	wait_child(pid, "child that only destroys");
	r0 = t_stats(a).pages_reported;
	t_dirty(a, 9, 1);
	EXPECT(wait_reported(a, r0 + 1, 2000)); /* the parent's thread still works */
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/* ---- 4. more: forks of forks, arenas created and destroyed meanwhile ---- */

struct churner {
	struct zp_arena *a;
	_Atomic int stop;
	_Atomic long errors;
	pthread_t t;
};

static void *churn(void *arg)
{
	struct churner *c = arg;
	uint64_t r = (uintptr_t)arg | 1;
	void *p[16] = {0};
	unsigned o[16];

	while (!c->stop) {
		unsigned i = (unsigned)(xs(&r) % 16);

		if (p[i]) {
			if (zp_free_pages(c->a, p[i], o[i]))
				c->errors++;
			p[i] = NULL;
		} else {
			uint64_t x = xs(&r);

			o[i] = x % 8 == 0 ? 9 : (unsigned)((x >> 3) % 5);
			p[i] = zp_alloc_pages(c->a, x & 64 ? ZP_GFP_ZERO : 0, o[i], ZP_USER_ADDR_NONE);
			if (p[i] && (x & 64) && !words_zero(p[i], ZP_PAGE_SIZE << o[i]))
				c->errors++;
			if (p[i])
				memset(p[i], 0x11, ZP_PAGE_SIZE << o[i]);
			else if (errno != ENOMEM)
				c->errors++;
		}
	}
	for (int i = 0; i < 16; i++)
		if (p[i] && zp_free_pages(c->a, p[i], o[i]))
			c->errors++;
	return NULL;
}

/* In a child: one order-0 allocation and free (order 9 may all be taken:
 * the parent's threads kept what they held). */
static void touch_one_page(struct zp_arena *a)
{
	char *p = zp_alloc_pages(a, 0, 0, ZP_USER_ADDR_NONE);

	if (!p)
		child_fail(8, "order-0 allocation failed: %s", strerror(errno));
	memset(p, 0x33, ZP_PAGE_SIZE);
	if (zp_free_pages(a, p, 0))
		child_fail(9, "zp_free_pages refused the page");
}

__attribute__((noreturn)) static void grandchild(struct zp_arena *a)
{
	struct zp_stats s;
	size_t got;

	child_start();
	zp_arena_stats(a, &s);
	errno = 0;
	got = take_all(a, 0, child_pages, 2048);
	if (got > 2048 || errno != ENOMEM)
		child_fail(2, "allocation ended after %zu pages with %s", got, strerror(errno));
	if (got != s.nr_free)
		child_fail(3, "%zu pages allocated, zp_arena_stats said %zu free", got, s.nr_free);
	if (!give_all(a, child_pages, got))
		child_fail(4, "zp_free_pages refused a page");
	if (zp_arena_report(a) < 0)
		child_fail(5, "zp_arena_report failed");
	if (zp_arena_check(a))
		child_fail(6, "zp_arena_check failed");
	zp_arena_destroy(a);
	_exit(0);
}

/*
 * A child whose background thread was restarted, with a thread of its own
 * churning, forks again: the fork handlers work in a child, and the
 * grandchild gets a working arena too.
 */
static void grandchild_of_a_busy_child(void)
{
	struct zp_config cfg = {.size = 2048 * ZP_PAGE_SIZE,
				.max_order = 10,
				.flags = ZP_REPORT | ZP_PREZERO,
				.report_delay_ms = 5,
				.prezero_bytes = (size_t)1 << 20};
	static struct churner c;
	pid_t pid;

	c.a = zp_arena_create(&cfg);
	ASSERT(c.a);
	c.stop = 0;
	c.errors = 0;
	pthread_create(&c.t, NULL, churn, &c);
	usleep(30 * 1000);
	pid = fork();
	if (pid == 0) {
		struct zp_stats s0;
		pid_t gpid;
		int st;

		child_start();
		c.stop = 0;
		zp_arena_stats(c.a, &s0);
		touch_one_page(c.a); /* restarts the background thread */
		if (pthread_create(&c.t, NULL, churn, &c))
			child_fail(2, "pthread_create failed in the child");
		usleep(30 * 1000);
		gpid = fork();
		if (gpid < 0)
			child_fail(3, "fork: %s", strerror(errno));
		if (gpid == 0)
			grandchild(c.a);
		while (waitpid(gpid, &st, 0) < 0 && errno == EINTR)
			;
		if (WIFSIGNALED(st))
			child_fail(4, "grandchild killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
		if (WEXITSTATUS(st))
			child_fail(10 + WEXITSTATUS(st), "grandchild exited with %d", WEXITSTATUS(st));
		c.stop = 1;
		pthread_join(c.t, NULL);
		if (c.errors)
			child_fail(5, "%ld errors in the child's churning thread", (long)c.errors);
		if (t_stats(c.a).nr_free != s0.nr_free)
			child_fail(6, "%zu pages free at the end, %zu at the start", t_stats(c.a).nr_free, s0.nr_free);
		if (zp_arena_check(c.a))
			child_fail(7, "zp_arena_check failed");
		zp_arena_destroy(c.a);
		_exit(0);
	}
	EXPECT(pid > 0);
	if (pid > 0)
		wait_child(pid, "child that forks a grandchild");
	c.stop = 1;
	pthread_join(c.t, NULL);
	EXPECT_EQ(c.errors, 0);
	EXPECT_EQ(zp_arena_check(c.a), 0);
	EXPECT_EQ(t_stats(c.a).nr_free, 2048);
	zp_arena_destroy(c.a);
}

/*
 * Arenas created and destroyed (each with a background thread) by another
 * thread while the main thread forks: the registry the fork handlers walk
 * changes under them.  Each child creates, uses and destroys an arena of
 * its own.
 */
#define CD_FORKS 40

static _Atomic int cd_stop;
static _Atomic long cd_errors, cd_cycles;

static void *create_destroy(void *arg)
{
	(void)arg;
	while (!cd_stop) {
		struct zp_config cfg = {
			.size = 256 * ZP_PAGE_SIZE, .max_order = 8, .flags = ZP_REPORT, .report_delay_ms = 1};
		struct zp_arena *a = zp_arena_create(&cfg);
		char *p;

		if (!a) {
			cd_errors++;
			continue;
		}
		p = zp_alloc_pages(a, 0, 8, ZP_USER_ADDR_NONE);
		if (!p) {
			cd_errors++;
		} else {
			memset(p, 0x22, ZP_PAGE_SIZE << 8);
			zp_free_pages(a, p, 8); /* wakes the thread */
		}
		zp_arena_destroy(a);
		cd_cycles++;
	}
	return NULL;
}

static void fork_while_arenas_come_and_go(void)
{
	pthread_t t;
	int failed = 0;

#if defined(__SANITIZE_ADDRESS__)
	/* the other thread mallocs (zp_arena_create) all the time */
	SKIP("GCC 12's ASan runtime does not lock its allocator at fork, so a child forked while another thread "
	     "is in malloc can hang in ASan's malloc (gdb: SizeClassAllocator64::GetFromAllocator); "
	     "this test runs in the plain and TSan builds");
#endif

	cd_stop = 0;
	cd_errors = cd_cycles = 0;
	pthread_create(&t, NULL, create_destroy, NULL);
	usleep(10 * 1000);
	for (int i = 0; i < CD_FORKS && failed < FS_MAX_FAILED; i++) {
		pid_t pid;

		usleep(1000 + (useconds_t)(i * 97 % 2000));
		pid = fork();
		if (pid < 0) {
			T_REPORT("fork: %s", strerror(errno));
			break;
		}
		if (pid == 0) {
			struct zp_config cfg = {.size = 1024 * ZP_PAGE_SIZE,
						.max_order = 10,
						.flags = ZP_REPORT | ZP_PREZERO,
						.report_delay_ms = 1,
						.prezero_bytes = (size_t)1 << 20};
			struct zp_arena *a;
			size_t got;

			child_start();
			a = zp_arena_create(&cfg);
			if (!a)
				child_fail(2, "zp_arena_create: %s", strerror(errno));
			t_dirty(a, 10, 1);
			got = take_all(a, 0, child_pages, 1024);
			if (got != 1024)
				child_fail(3, "%zu of 1024 pages could be allocated", got);
			if (!give_all(a, child_pages, got))
				child_fail(4, "zp_free_pages refused a page");
			if (zp_arena_report(a) < 0)
				child_fail(6, "zp_arena_report failed");
			if (zp_arena_check(a))
				child_fail(5, "zp_arena_check failed");
			zp_arena_destroy(a);
			_exit(0);
		}
		if (wait_child(pid, "child of a fork while arenas come and go"))
			failed++;
	}
	cd_stop = 1;
	pthread_join(t, NULL);
	EXPECT_EQ(cd_errors, 0);
	EXPECT(cd_cycles > 0);
}

/*
 * The fork handlers block signals from prepare to parent or child, and
 * then unblock only what they blocked: a child handler registered before
 * the library's (a constructor of higher priority), which runs before
 * ours in the child, unblocks SIGUSR2, which the parent blocks, and the
 * child keeps it unblocked (a signal such a handler blocks is unblocked
 * again by ours: zpage.h); the parent's mask after the fork is its mask
 * before, and so is the child's but for SIGUSR2.
 */
static volatile int early_unblock;

static void early_child(void)
{
	sigset_t u;

	if (!early_unblock)
		return;
	sigemptyset(&u);
	sigaddset(&u, SIGUSR2);
	pthread_sigmask(SIG_UNBLOCK, &u, NULL);
}

__attribute__((constructor(101))) static void early_atfork(void)
{
	pthread_atfork(NULL, NULL, early_child);
}

static void fork_handlers_leave_other_mask_changes(void)
{
	struct zp_arena *a = t_arena(64, 4, 0);
	sigset_t before, after, usr2, entry;
	pid_t pid;
	int st;

	ASSERT(a);
	sigemptyset(&usr2);
	sigaddset(&usr2, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &usr2, &entry);
	pthread_sigmask(SIG_BLOCK, NULL, &before); /* with SIGUSR2 */
	early_unblock = 1;
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		sigset_t m;

		pthread_sigmask(SIG_BLOCK, NULL, &m);
		if (sigismember(&m, SIGUSR2))
			_exit(1);
		for (int s = 1; s <= SIGRTMAX; s++)
			if (s != SIGUSR2 && sigismember(&before, s) != sigismember(&m, s))
				_exit(2);
		_exit(0);
	}
	early_unblock = 0;
	ASSERT(pid > 0);
	pthread_sigmask(SIG_BLOCK, NULL, &after);
	pthread_sigmask(SIG_SETMASK, &entry, NULL); /* as the test found it */
	for (int s = 1; s <= SIGRTMAX; s++)
		if (sigismember(&before, s) != sigismember(&after, s))
			T_REPORT("signal %d is %sblocked in the parent after the fork", s, sigismember(&after, s) ? "" : "un");
	st = t_wait_child(pid);
	if (st > 0)
		T_DIAG("child exit %d: %s", st,
		       st == 1 ? "SIGUSR2, unblocked by an earlier child handler, was blocked again"
			       : "the child's mask is not the parent's");
	EXPECT_EQ(st, 0);
	zp_arena_destroy(a);
}

int main(int argc, char **argv)
{
	t_init(argc, argv);
	/* before any arena, as an application would: zpage registered its
	 * handlers when it was loaded, so this child handler runs after
	 * zpage's has released its locks, and may call zpage */
	pthread_atfork(NULL, NULL, child_handler_uses_zpage);
	RUN(fork_stress);
	RUN(child_gets_isolated_blocks_back);
	RUN(fork_while_allocation_waits_for_a_pass);
	RUN(child_restarts_background_thread);
	RUN(child_first_inline_call_starts_thread);
	RUN(child_destroys_without_using);
	RUN(grandchild_of_a_busy_child);
	RUN(application_child_handler_calls_zpage);
	RUN(fork_while_arenas_come_and_go);
	RUN(fork_handlers_leave_other_mask_changes);
	return t_done("test_fork");
}
