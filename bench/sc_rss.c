/* SPDX-License-Identifier: MIT */
/*
 * rss: resident memory over time for a workload that grows (512 MiB in
 * 2 MiB blocks, written), frees everything, then idles; with ZP_REPORT
 * (report_delay_ms 1000) and without.  VmRSS sampled every 100 ms.
 *
 * prezero: zeroing order-9 allocations by a loop that writes each block,
 * frees it and thinks for 2 ms; latency of the allocation call with and
 * without ZP_PREZERO (prezero_bytes 64 MiB), and the CPU time the pre-zero
 * thread used (process CPU time minus the main thread's).
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
}

static double cpu_s(int who)
{
	struct rusage ru;

	getrusage(who, &ru);
	return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

void sc_prezero(void)
{
	size_t iters = (size_t)(300 * opt_scale);

	if (iters < 20)
		iters = 20;
	for (int on = 0; on < 2; on++) {
		struct zp_config cfg = {
			.size = (size_t)256 << 20, .flags = on ? ZP_PREZERO : 0, .prezero_bytes = (size_t)64 << 20};
		struct zp_arena *a = arena_or_die(&cfg);
		const char *row = on ? "ZP_PREZERO (64 MiB ready)" : "no pre-zeroing";
		double *lat = xmalloc(iters * sizeof(double)), proc0, thr0, p99;
		char *p[32];

		/* make the arena's memory dirty first: 64 MiB written and freed */
		for (int i = 0; i < 32; i++) {
			p[i] = zp_alloc_pages(a, 0, 9, ZP_USER_ADDR_NONE);
			memset(p[i], 1, BLK);
		}
		for (int i = 0; i < 32; i++)
			zp_free_pages(a, p[i], 9);
		proc0 = cpu_s(RUSAGE_SELF);
		thr0 = cpu_s(RUSAGE_THREAD);
		for (size_t i = 0; i < iters; i++) {
			double t0 = now_ns();
			char *b = zp_alloc_pages(a, ZP_GFP_ZERO, 9, ZP_USER_ADDR_NONE);

			lat[i] = (now_ns() - t0) / 1e3;
			if (!b)
				die("prezero: allocation failed");
			memset(b, 2, BLK);
			zp_free_pages(a, b, 9);
			if (i % 16 == 0)
				progress("prezero: %s %zu/%zu", row, i, iters);
			sleep_ms(2);
		}
		double other = (cpu_s(RUSAGE_SELF) - proc0) - (cpu_s(RUSAGE_THREAD) - thr0);
		arena_done(a, "prezero", row);
		result("prezero", row, "alloc latency", "us", lat, iters);
		p99 = pct(lat, iters, 99);
		result("prezero", row, "latency p99", "us", &p99, 1);
		other = other > 0 ? other * 1e3 : 0; /* rusage ticks can make it a hair negative */
		result("prezero", row, "pre-zero thread CPU", "ms", &other, 1);
		free(lat);
	}
	note("prezero",
	     "%zu zeroing 2 MiB allocations, each written, freed, then 2 ms idle; pre-zero rate cap "
	     "ZPAGE_PREZERO_RATE_MB (default 1024 MiB/s)",
	     iters);
}
