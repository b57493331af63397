/* SPDX-License-Identifier: MIT */
/*
 * rss: resident memory over time for a workload that grows (512 MiB in
 * 2 MiB blocks, written), frees everything, then idles; with ZP_REPORT
 * (report_delay_ms 1000) and without.  VmRSS sampled every 100 ms.
 *
 * prezero: zeroing order-9 allocations by a loop that writes each block,
 * frees it and thinks for 2 ms; latency of the allocation call with and
 * without ZP_PREZERO (prezero_bytes 64 MiB), and the CPU time the pre-zero
 * thread used (process CPU time minus the main thread's).  The two rows
 * run in rounds, in an order rotating from round to round; rss cannot (see
 * its note).
 */
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define BLK ((size_t)2 << 20)

static double rss_mib(void)
{
	return rss_kib() / 1024.0;
}

static void sleep_ms(double ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)((ms - (time_t)(ms / 1000) * 1000) * 1e6)};

	nanosleep(&ts, NULL);
}

struct points {
	double *x, *y;
	size_t n, capx, capy;
};

/* one more point: seconds since @t0, MiB resident above @base */
static void sample_rss(struct points *s, double t0, double base)
{
	GROW(s->x, s->capx, s->n + 1);
	GROW(s->y, s->capy, s->n + 1);
	s->x[s->n] = (now_ns() - t0) / 1e9;
	s->y[s->n++] = rss_mib() - base;
}

void sc_rss(void)
{
	size_t nblk = (size_t)(256 * opt_scale);
	double idle_s = opt_scale < 1 ? 1.5 : 3.0;

	if (nblk < 8)
		nblk = 8;
	for (int on = 1; on >= 0; on--) {
		struct zp_config cfg = {.size = (size_t)1 << 30, .flags = on ? ZP_REPORT : 0, .report_delay_ms = 1000};
		struct zp_arena *a = arena_or_die(&cfg);
		char **p = xmalloc(nblk * sizeof(*p));
		double base = rss_mib(), t0 = now_ns();
		struct points s = {0};
		const char *row = on ? "ZP_REPORT (delay 1 s)" : "no reporting";

		progress("rss: reporting %s", on ? "on" : "off");
		for (size_t i = 0; i < nblk; i++) {
			p[i] = zp_alloc_pages(a, ZP_GFP_ZERO, 9, ZP_USER_ADDR_NONE);
			if (!p[i])
				die("rss: allocation failed");
			memset(p[i], 0x5a, BLK);
			if (i % (nblk / 8) == 0)
				sample_rss(&s, t0, base);
		}
		note("rss", "%s: freed everything at %.2f s", row, (now_ns() - t0) / 1e9);
		for (size_t i = 0; i < nblk; i++)
			zp_free_pages(a, p[i], 9);
		for (double t = 0; t < idle_s; t += 0.1) {
			sample_rss(&s, t0, base);
			sleep_ms(100);
		}
		series("rss", row, s.x, s.y, s.n, "time (s)", "resident memory (MiB, VmRSS)");
		result("rss", row, "RSS at the end", "MiB", &s.y[s.n - 1], 1);
		for (size_t i = 0; i < s.n; i += s.n / 8 ? s.n / 8 : 1)
			note("rss", "t=%5.2fs  %-22s %7.1f MiB", s.x[i], row, s.y[i]);
		arena_done(a, "rss", row);
		free(p);
		free(s.x);
		free(s.y);
	}
	note("rss", "grow to %zu MiB (written), free all, idle %.1f s; RSS relative to before the arena", nblk * 2,
	     idle_s);
	note("rss", "row order: fixed, one pass each, not interleaved: VmRSS is the whole process's, so a row "
		    "running beside another would count the other's memory as its own");
}

static double cpu_s(int who)
{
	struct rusage ru;

	getrusage(who, &ru);
	return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* Wait (at most 1 s) until @a's pre-zero thread has @bytes of zeroed
 * memory ready again and is idle, so that it does not share the memory
 * bus with the other row's samples. */
static void settle(struct zp_arena *a, size_t bytes)
{
	double end = now_ns() + 1e9;
	struct zp_stats st;

	do {
		zp_arena_stats(a, &st);
		if (st.nr_free_zeroed << ZP_PAGE_SHIFT >= bytes)
			return;
		sleep_ms(1);
	} while (now_ns() < end);
}

/*
 * Both rows' arenas live through the scenario; it runs in rounds, each a
 * share of every row's iterations, the rows in an order rotating from
 * round to round.  The pre-zeroing row's thread is let settle before the
 * other row runs.  Its CPU time is the process's minus this thread's over
 * the whole scenario: no other thread runs meanwhile.
 */
void sc_prezero(void)
{
	static const char *const rows[2] = {"no pre-zeroing", "ZP_PREZERO (64 MiB ready)"};
	const size_t ready = (size_t)64 << 20;
	size_t iters = (size_t)(300 * opt_scale), done[2] = {0, 0};
	int rounds;
	struct zp_arena *a[2];
	double *lat[2], proc0, thr0, other, p99;
	struct rotation rot;

	if (iters < 20)
		iters = 20;
	rounds = iters >= 60 ? 6 : 2;
	for (int on = 0; on < 2; on++) {
		struct zp_config cfg = {
			.size = (size_t)256 << 20, .flags = on ? ZP_PREZERO : 0, .prezero_bytes = ready};
		char *p[32];

		a[on] = arena_or_die(&cfg);
		lat[on] = xmalloc(iters * sizeof(double));
		/* make the arena's memory dirty first: 64 MiB written and freed */
		dirty_blocks(a[on], p, 32);
	}
	proc0 = cpu_s(RUSAGE_SELF);
	thr0 = cpu_s(RUSAGE_THREAD);
	settle(a[1], ready);
	rotation_init(&rot, "prezero", "round", 2, (size_t)rounds);
	for (int r = 0; r < rounds; r++) {
		const size_t *order = rotation_next(&rot);

		for (int j = 0; j < 2; j++) {
			int on = (int)order[j];
			size_t upto = iters * (size_t)(r + 1) / (size_t)rounds;

			for (; done[on] < upto; done[on]++) {
				double t0 = now_ns();
				char *b = zp_alloc_pages(a[on], ZP_GFP_ZERO, 9, ZP_USER_ADDR_NONE);

				lat[on][done[on]] = (now_ns() - t0) / 1e3;
				if (!b)
					die("prezero: allocation failed");
				memset(b, 2, BLK);
				zp_free_pages(a[on], b, 9);
				if (done[on] % 16 == 0)
					progress("prezero: %s %zu/%zu", rows[on], done[on], iters);
				sleep_ms(2);
			}
			if (on)
				settle(a[on], ready);
		}
	}
	other = (cpu_s(RUSAGE_SELF) - proc0) - (cpu_s(RUSAGE_THREAD) - thr0);
	other = other > 0 ? other * 1e3 : 0; /* rusage ticks can make it a hair negative */
	for (int on = 0; on < 2; on++) {
		arena_done(a[on], "prezero", rows[on]);
		result("prezero", rows[on], "alloc latency", "us", lat[on], iters);
		p99 = pct(lat[on], iters, 99);
		result("prezero", rows[on], "latency p99", "us", &p99, 1);
		result("prezero", rows[on], "pre-zero thread CPU", "ms", on ? &other : (double[]){0}, 1);
		free(lat[on]);
	}
	note("prezero",
	     "%zu zeroing 2 MiB allocations a row, each written, freed, then 2 ms idle; pre-zero rate cap "
	     "ZPAGE_PREZERO_RATE_MB (default 1024 MiB/s); the pre-zeroing row's thread is let refill its 64 MiB "
	     "before the other row runs",
	     iters);
	rotation_done(&rot);
}
