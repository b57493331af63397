/* SPDX-License-Identifier: MIT */
/*
 * The background thread's timed wait runs on CLOCK_MONOTONIC: a jump of
 * the wall clock (CLOCK_REALTIME) neither stretches nor cuts it short.
 *
 * This binary defines clock_gettime(), so every call to it from the test
 * and from the static libzpage.a resolves here: it returns the real clocks
 * (straight from the system call), except that while `wall_shift_s` is not
 * 0 CLOCK_REALTIME is that many seconds off, as if an administrator or NTP
 * had stepped the wall clock.  (A library computing a CLOCK_REALTIME
 * deadline for pthread_cond_timedwait() on a default condition variable
 * then waits an hour too long, or spins until the deadline it meant.)
 *
 * The daemon is started by the library with pthread_create(), which is why
 * the Makefile also builds this file under ThreadSanitizer.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

#define MiB ((size_t)1 << 20)

static _Atomic long wall_shift_s;

/*
 * The interposed clock.  Not instrumented: a sanitizer runtime may call
 * it before it has initialised itself.
 */
__attribute__((no_sanitize("address", "thread", "undefined"))) int clock_gettime(clockid_t clk, struct timespec *ts)
{
	long rc = syscall(SYS_clock_gettime, clk, ts);

	if (rc == 0 && (clk == CLOCK_REALTIME || clk == CLOCK_REALTIME_COARSE))
		ts->tv_sec += atomic_load_explicit(&wall_shift_s, memory_order_relaxed);
	return (int)rc;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* Is this binary's clock_gettime() the one that answers?  (The shift shows.) */
static bool interposed(void)
{
	struct timespec fake, real;
	long d;

	atomic_store(&wall_shift_s, 3600);
	clock_gettime(CLOCK_REALTIME, &fake);
	syscall(SYS_clock_gettime, CLOCK_REALTIME, &real);
	atomic_store(&wall_shift_s, 0);
	d = (long)(fake.tv_sec - real.tv_sec);
	return d >= 3599 && d <= 3600;
}

/*
 * Free a dirty 2 MiB block into an arena with ZP_REPORT and the real
 * backend, with the wall clock @shift seconds off; wait up to 2 s for the
 * report pass.  Returns the time it took (ms), or UINT64_MAX if none came;
 * @nsleeps: how many times the thread went to sleep meanwhile.
 */
static uint64_t report_after_jump(long shift, unsigned delay_ms, uint64_t *nsleeps)
{
	struct zp_config cfg = {.size = 16 * MiB, .max_order = 9, .flags = ZP_REPORT, .report_delay_ms = delay_ms};
	struct zp_arena *a = zp_arena_create(&cfg);
	uint64_t t0, t = UINT64_MAX, s0;
	char *p;

	if (!a) {
		T_DIAG("zp_arena_create: %s", strerror(errno));
		abort();
	}
	p = zp_alloc_pages(a, 0, 9, ZP_USER_ADDR_NONE);
	if (!p)
		abort();
	memset(p, 0x5a, 2 * MiB);
	sleep_ms(10); /* the thread is asleep, waiting for work */
	/* the wall clock jumps; then the free schedules a pass delay_ms later */
	atomic_store(&wall_shift_s, shift);
	s0 = zp_test_daemon_sleeps(a);
	t0 = mono_ms();
	zp_free_pages(a, p, 9);
	while (mono_ms() - t0 < 2000) {
		if (t_stats(a).pages_reported) {
			t = mono_ms() - t0;
			break;
		}
		sleep_ms(2);
	}
	*nsleeps = zp_test_daemon_sleeps(a) - s0;
	atomic_store(&wall_shift_s, 0);
	zp_arena_destroy(a);
	return t;
}

/* Forward by an hour: a realtime deadline would be an hour away. */
static void timed_wait_survives_wall_clock_jump(void)
{
	uint64_t n, t;

	if (!interposed())
		SKIP("this build's clock_gettime() is not the test's (a sanitizer runtime answers it), "
		     "so the wall clock cannot be moved");
	t = report_after_jump(3600, 50, &n);
	if (t == UINT64_MAX)
		T_REPORT("no report pass within 2 s of the free with report_delay_ms 50 after the wall clock "
			 "jumped one hour ahead (the thread's wait is on CLOCK_REALTIME?)");
	else
		EXPECT(t >= 45); /* and not before the delay */
	EXPECT(n <= 10);
}

/* Back by an hour: a realtime deadline would be in the past at once. */
static void timed_wait_not_cut_short_by_backward_jump(void)
{
	uint64_t n, t;

	if (!interposed())
		SKIP("this build's clock_gettime() is not the test's (a sanitizer runtime answers it), "
		     "so the wall clock cannot be moved");
	t = report_after_jump(-3600, 200, &n);
	EXPECT(t != UINT64_MAX && t >= 190);
	/* a handful of sleeps, not one per timed-out wait in a spinning loop */
	if (n > 10)
		T_REPORT("the thread went to sleep %llu times in %llu ms waiting for a 200 ms report delay "
			 "after the wall clock jumped one hour back: its timed wait returns at once",
			 (unsigned long long)n, (unsigned long long)t);
}

int main(int argc, char **argv)
{
	t_init(argc, argv);
	RUN(timed_wait_survives_wall_clock_jump);
	RUN(timed_wait_not_cut_short_by_backward_jump);
	return t_done("test_clock");
}
