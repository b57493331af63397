/* SPDX-License-Identifier: MIT */
/*
 * The machine's limit, measured in the same run.  This machine's memory
 * bandwidth drifts (here 20-80 GB/s within an hour), so a figure means
 * little without the limit measured beside it.  Before each scenario (and
 * again after it, to show the drift), calib_run() measures, in about a
 * tenth of a second:
 *
 *   touch       the first write, one byte per 4 KiB page, to 64 MiB of
 *               freshly mapped anonymous memory with THP asked, three
 *               fresh mappings, the median: the rate
 *               at which the kernel hands out zeroed memory now (page
 *               faults and the kernel's clear; on a VM, the hypervisor's
 *               faults too when it had discarded the memory)
 *   nt, cached  one thread clearing 64 MiB of resident, dirty, cache-cold
 *               memory with zpage's own primitives, zero_nt() (non-
 *               temporal stores: the clear limit) and zero_cached(), one
 *               2 MiB piece at a time as zpage clears a block (rep stosb
 *               over tens of MiB streams past the cache here and runs
 *               twice as fast as it does over 2 MiB: not what a clear of a
 *               block or a program's own writes can have)
 *   cached_all  the same cached clear shared by --threads threads at once
 *
 * "Cache-cold": the 128 MiB mapping is two halves of 64 MiB (2x the L3
 * here); before each clear of one half, that half and then the other are
 * written, so the half cleared is dirty and evicted.  Each clear is the
 * median of three.  The start's figures go into `calib` for the scenario's
 * "of the limit" columns; both go into a note in every table the scenario
 * made.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"
#include "results.h"

#define HALF  ((size_t)64 << 20)
#define PIECE ((size_t)2 << 20)
#define REPS  3

struct calib calib;

struct part {
	void (*fn)(void *p, size_t len);
	char *p;
	size_t len;
	pthread_barrier_t *bar; /* NULL: run alone */
	double t0, t1;
};

static void *clear_part(void *arg)
{
	struct part *w = arg;

	if (w->bar)
		pthread_barrier_wait(w->bar);
	w->t0 = now_ns();
	for (size_t off = 0; off < w->len; off += PIECE)
		w->fn(w->p + off, w->len - off < PIECE ? w->len - off : PIECE);
	w->t1 = now_ns();
	return NULL;
}

/* GB/s of @fn clearing the HALF bytes at @x, shared by @nt threads (each a
 * page-aligned slice), from the first thread's start to the last one's
 * end.  @x is written, then @y (the other half), so @x is dirty and out of
 * the cache when the clear starts. */
static double clear_rate(char *x, char *y, void (*fn)(void *p, size_t len), unsigned nt)
{
	size_t slice = (HALF / nt) & ~(size_t)(ZP_PAGE_SIZE - 1);
	struct part *w = xmalloc(nt * sizeof(*w));
	pthread_t *t = xmalloc(nt * sizeof(*t));
	pthread_barrier_t bar;
	double t0, t1;

	memset(x, 0x5a, HALF);
	memset(y, 0x5a, HALF);
	for (unsigned i = 0; i < nt; i++)
		w[i] = (struct part){fn, x + i * slice, i + 1 < nt ? slice : HALF - i * slice, nt > 1 ? &bar : NULL};
	if (nt == 1) {
		clear_part(&w[0]);
	} else {
		pthread_barrier_init(&bar, NULL, nt);
		for (unsigned i = 0; i < nt; i++)
			if (pthread_create(&t[i], NULL, clear_part, &w[i]))
				die("calibration: cannot start a thread");
		for (unsigned i = 0; i < nt; i++)
			pthread_join(t[i], NULL);
		pthread_barrier_destroy(&bar);
	}
	t0 = w[0].t0;
	t1 = w[0].t1;
	for (unsigned i = 1; i < nt; i++) {
		t0 = w[i].t0 < t0 ? w[i].t0 : t0;
		t1 = w[i].t1 > t1 ? w[i].t1 : t1;
	}
	free(w);
	free(t);
	return (double)HALF / (t1 - t0);
}

static struct calib measure(void)
{
	char *m;
	double v[4][REPS], t0;
	struct calib c;

	/* the primitives are chosen (CPUID) at the first arena or name asked */
	(void)zero_nt_name();
	(void)zero_cached_name();
	for (int r = 0; r < REPS; r++) { /* each pass on memory never touched */
		m = map_thp(HALF);
		t0 = now_ns();
		touch_pages(m, HALF);
		v[3][r] = (double)HALF / (now_ns() - t0);
		munmap(m, HALF);
	}
	c.touch = pct(v[3], REPS, 50);
	m = map_thp(2 * HALF);
	touch_pages(m, 2 * HALF);
	for (int r = 0; r < REPS; r++) {
		char *x = m + (size_t)(r & 1) * HALF, *y = m + (size_t) !(r & 1) * HALF;

		v[0][r] = clear_rate(x, y, zero_nt, 1);
		v[1][r] = clear_rate(y, x, zero_cached, 1);
		v[2][r] = opt_threads > 1 ? clear_rate(x, y, zero_cached, opt_threads) : v[1][r];
	}
	c.nt = pct(v[0], REPS, 50);
	c.cached = pct(v[1], REPS, 50);
	c.cached_all = pct(v[2], REPS, 50);
	munmap(m, 2 * HALF);
	return c;
}

void calib_run(void (*run)(void))
{
	size_t from = results_count();
	struct strlist scs = {0};
	struct calib end;
	char *threads;

	progress("measuring the limit");
	calib = measure();
	run();
	progress("measuring the limit again");
	end = measure();
	threads = opt_threads > 1 ? xasprintf(", %u threads %.1f (%.1f)", opt_threads, calib.cached_all, end.cached_all)
				  : xstrdup("");
	result_scenarios(from, &scs);
	for (size_t i = 0; i < scs.n; i++)
		note(scs.v[i],
		     "limit, measured at the start (end) of this scenario, GB/s: clear of 64 MiB of cold dirty "
		     "memory in 2 MiB pieces, non-temporal (%s) %.1f (%.1f), cached (%s) %.1f (%.1f)%s; first "
		     "write to fresh memory (THP, median of 3 new 64 MiB mappings) %.1f (%.1f)",
		     zero_nt_name(), calib.nt, end.nt, zero_cached_name(), calib.cached, end.cached, threads,
		     calib.touch, end.touch);
	free(threads);
	strlist_free(&scs);
}
