/* SPDX-License-Identifier: MIT */
/*
 * zpage-bench: what a scenario sees.
 *
 * A scenario measures samples and records each metric of each row with
 * result(): the median with the 10th-90th percentile spread is kept, and the
 * samples too (for plots).  The files:
 *   main.c     the command line and the scenario table
 *   util.c     timing, percentiles, random numbers, allocation, messages
 *   results.c  the store of results, the text tables, CSV and JSON
 *   plot.c     one gnuplot script per chart, run as `gnuplot NAME.gp`
 *   peers.c    the allocators zpage is compared with
 *   env.c      the environment: machine, kernel, build, peer versions
 *   compare.c  `zpage-bench compare OLD.json NEW.json`
 *   report.c   --report DIR: DIR/index.md
 *   rotate.c   rows in an order that rotates from round to round
 *   calib.c    the machine's limit, measured at the start of each scenario
 *   sc_*.c     the scenarios
 * results.h has what main.c and plot.c read back from the store.
 */
#ifndef ZPAGE_BENCH_H
#define ZPAGE_BENCH_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stddef.h>
#include <stdint.h>

#include "zpage.h"

/* options (main.c) */
extern unsigned opt_threads; /* default: online CPUs */
extern double opt_scale;     /* multiplies sample counts and durations */
extern bool opt_dump;	     /* --dump: zp_arena_dump() each kind of arena as it ends */
extern double opt_idle;	     /* fault: seconds to idle before the "after idle" rows (0 = skip) */
enum churn_touch { TOUCH_PAGE, TOUCH_BLOCK, TOUCH_NONE };
extern enum churn_touch opt_churn_touch; /* --churn-touch: what churn writes in each block it gets */
extern bool opt_churn_nozero; /* --churn-zero none: no zero-filled allocations in churn */
extern bool opt_churn_orders; /* --churn-orders: churn's calls timed by block order too */
extern bool opt_churn_floor;  /* --churn-floor: churn's loop with no allocator too (an estimate, not a peer) */
extern unsigned opt_repeat;  /* --repeat: how many times the chosen scenarios run */
/* the tunable main.c adds to GLIBC_TUNABLES when it re-executes itself
 * (jemalloc's static TLS), which env.c leaves out of the allocator settings */
#define REEXEC_TUNABLE "glibc.rtld.optional_static_tls=16384"

/* util.c */
/* ns: CLOCK_MONOTONIC; this thread's CPU time (CLOCK_THREAD_CPUTIME_ID, task-clock) */
double now_ns(void);
double thread_cpu_ns(void);
double pct(const double *v, size_t n, double p); /* v is not reordered */
double median(const double *v, size_t n);	 /* the mean of the middle two for even n; 0 for none */
void sort_doubles(double *v, size_t n);
uint64_t rnd64(uint64_t *s);
/* ns to read the 64 KiB around page @t of a block of @bytes (clipped to
 * the block), one load per cache line: what a caller touches first */
double read_window(const char *blk, size_t bytes, size_t t);
/* one byte written in every 4 KiB page of [p, p + bytes), at offset 64 */
void touch_pages(char *p, size_t bytes);
/* @len bytes of fresh private anonymous memory aligned to 2 MiB, THP asked
 * (MADV_HUGEPAGE); munmap(p, len) gives it all back.  Dies on failure. */
char *map_thp(size_t len);
long rss_kib(void);	 /* VmRSS of this process, KiB (0 if unknown) */
extern bool progress_on; /* set by main.c: stderr is a terminal */
void progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void *xmalloc(size_t n);
void *xmemdup(const void *p, size_t n);
char *xstrdup(const char *s);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
/* @p (of *@cap elements of @size bytes) grown to hold at least @need:
 * GROW(arr, cap, need) */
void *grow_array(void *p, size_t *cap, size_t need, size_t size);
#define GROW(arr, cap, need) ((arr) = grow_array((arr), &(cap), (need), sizeof(*(arr))))
struct zp_arena *arena_or_die(const struct zp_config *cfg);
/* Take @n 2 MiB blocks of @a, write them, give them all back: dirty free
 * memory, no longer in cache when n x 2 MiB is well above the L3 (@p is
 * scratch space for n pointers). */
void dirty_blocks(struct zp_arena *a, char **p, size_t n);
void arena_done(struct zp_arena *a, const char *sc, const char *row); /* --dump, then destroy */

/* results.c.  Record a metric of a row: median and spread of @samples
 * (copied).  A unit that is a rate ("GB/s", "M ops/s") means higher is
 * better; any other (time, memory, a ratio of times) lower is better. */
void result(const char *scenario, const char *row, const char *metric, const char *unit, const double *samples,
	    size_t n);
/* A note printed under the scenario's table. */
void note(const char *scenario, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The row other rows' medians are divided by in the "x ref" columns. */
void reference(const char *scenario, const char *row);
/* The row the report's reading compares zpage's @row with, where the text
 * after the first comma does not pair them (fault's rows). */
void counterpart(const char *scenario, const char *row, const char *other);
/* A series for a line plot (rss over time): x, y pairs. */
void series(const char *scenario, const char *name, const double *x, const double *y, size_t n, const char *xlabel,
	    const char *ylabel);

/* rotate.c: the order rows run in, rotating from step (round or sample)
 * to step; see there. */
struct rotation {
	char *sc;
	const char *unit;  /* "round", "sample", ...: what a step is, for the note */
	const char *items; /* what is rotated, for the note: "rows" unless set after init */
	size_t n, nsteps, step;
	size_t *first; /* per row: the steps it went first */
	size_t *order;
};
/* @nrows rows, about @nsteps steps expected (spreads the first rows when
 * there are fewer steps than rows) */
void rotation_init(struct rotation *r, const char *sc, const char *unit, size_t nrows, size_t nsteps);
/* The next step's order: order[k] = the row (0..nrows-1) to run k-th. */
const size_t *rotation_next(struct rotation *r);
/* A note on how often each row went first; frees what init took. */
void rotation_done(struct rotation *r);

/* calib.c: this machine's limit now, measured at the start of the running
 * scenario (GB/s), for "of the limit" columns. */
struct calib {
	double nt;	   /* non-temporal clear, 1 thread, of a cache-cold resident dirty buffer */
	double cached;	   /* cached clear of the same, 1 thread */
	double cached_all; /* cached clear of the same by opt_threads threads at once */
	double touch;	   /* first write (one byte per 4 KiB page) to fresh memory, THP asked */
};
extern struct calib calib;
/* Measure, run @run, measure again; then a note in each table @run made
 * with both measurements. */
void calib_run(void (*run)(void));

/* peers (peers.c): the allocators people use instead */
struct peer {
	const char *name;
	bool available;
	const char *why;	      /* when not available */
	void *(*zalloc)(size_t size); /* zero-filled, page-aligned at least */
	void *(*alloc)(size_t size);  /* contents undefined, page-aligned at least */
	void (*release)(void *p, size_t size);
};
enum { PEER_GLIBC, PEER_JEMALLOC, PEER_MIMALLOC, PEER_TCMALLOC, NR_PEERS };
extern struct peer peers[NR_PEERS];
void peers_load(void);

/* scenarios */
void sc_fault(void);
void sc_anon_seq(void);
void sc_anon_rand(void);
void sc_churn(void);
void sc_reuse(void);
void sc_clear(void);
void sc_rss(void);
void sc_prezero(void);
void sc_pairs(void);
void sc_scale(void);
void sc_seed(void);
void sc_preload(void);

#endif
