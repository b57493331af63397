/* SPDX-License-Identifier: MIT */
/*
 * churn: a seeded mix of allocations and frees of orders 0..10 (P(order >=
 * k) = 2^-k), half of them zero-filled, each thread keeping up to 64 blocks
 * live and writing one byte in each page of each block it gets, as a
 * program using the memory would (--churn-touch block: the first byte of
 * the block only, which spares allocators that hand out lazily mapped
 * memory the faults and zeroing of the rest; --churn-touch none with
 * --churn-zero none: no writes and no zero-filled allocations, what is
 * left is each allocator's own path).  Operations per
 * second (3 runs) and per-operation latency percentiles, 1 thread and
 * --threads threads, for zpage and the peers (4 KiB << order, page-aligned),
 * every row's run r before any row's run r + 1, the rows in an order
 * rotating from run to run, after one warm-up run of every row that is not
 * recorded.  zpage's rows share one arena for the whole scenario, as a
 * long-lived program keeps one; each peer keeps its heap for the process.
 * With the warm-up, no row's recorded runs pay the first touch of the
 * memory it works in, though each allocator still pays for what its own
 * policy gives back to the OS and takes again (zpage's default arena gives
 * nothing back; churn does not report RSS).
 * Latency is timed around each call with clock_gettime (~20 ns included);
 * the block's order is drawn before the clock starts.
 * --churn-orders: the same timestamps, summed by block order and kind of
 * call (allocation, zeroing allocation, free) and for the time from each
 * call's return to the next call (after an allocation the writes into the
 * block, and the loop's own work, which is all that follows a free;
 * a gap with the latency buffer's compaction in it is left out): means a
 * call, a sample a run.  Outside the timed calls, and only with the
 * option.
 * A thread keeps at most MAX_LAT latencies: those of every stride-th call,
 * the stride doubling (and every other kept one dropped) when the buffer is
 * full, so that what is kept samples the whole run evenly.
 * --churn-floor: "floor" rows too, the same loop with no allocator (below):
 * an estimate of what the loop and its memory cost without one, not a peer.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "bench.h"

#define LIVE	64
#define MAX_LAT ((size_t)1 << 20)
#define ORDERS	11 /* 0..10 */

/* --churn-orders: what is timed, by block order */
enum { K_ALLOC, K_AFTER, K_ZALLOC, K_ZAFTER, K_FREE, K_FAFTER, NR_KINDS }; /* a call, then its gap */
static const char *const kind_name[NR_KINDS] = {"alloc", "after alloc", "zeroing alloc", "after zeroing alloc",
						"free", "after free"};
struct by_order {
	double sum[ORDERS][NR_KINDS]; /* ns */
	unsigned long n[ORDERS][NR_KINDS];
};

/*
 * --churn-floor: the loop with no allocator around its blocks, an estimate
 * of what churn's loop and its memory cost on this machine.  Each thread
 * of a floor row keeps the blocks it frees in a stack per order and takes
 * the newest of the order again; it carves a block from its own part of
 * one mapping only when that stack is empty.  The mapping has 2 MiB pages
 * asked (map_thp()) and starts aligned to the largest block, and each
 * order's area, the largest first, is aligned to its blocks' size, so its
 * blocks are aligned to their size as zpage's are.  A zero-filled block is
 * a memset of the block the loop dirtied.  No metadata and no check of the
 * pointer; one call, not inlined, as zpage's rows make one into the
 * library (the peers' rows make two, through the bench's wrapper).  An
 * order's stack never holds more than LIVE blocks, nor are more than LIVE
 * ever carved (one is carved only when none is free, and at most LIVE - 1
 * are live then).  A recorded run may carve (and so touch for the first
 * time) blocks the warm-up did not need: the note counts them.
 */
struct floor_heap {
	char *area[ORDERS];    /* LIVE blocks of each order, in this thread's part */
	unsigned made[ORDERS]; /* blocks carved from each area */
	unsigned n[ORDERS];    /* free blocks on each stack */
	void *stack[ORDERS][LIVE];
};
/* a thread's part: the areas of orders 10 down to 0, LIVE blocks each (511.75
 * MiB), rounded up to 512 MiB so that every part starts aligned to the
 * largest block */
#define FLOOR_PART ((size_t)512 << 20)

static __attribute__((noinline)) void *floor_alloc(struct floor_heap *h, unsigned o, bool zero)
{
	size_t size = ZP_PAGE_SIZE << o;
	void *p;

	if (h->n[o])
		p = h->stack[o][--h->n[o]];
	else if (h->made[o] < LIVE)
		p = h->area[o] + size * h->made[o]++;
	else
		return NULL; /* cannot happen (above); counted as a failure */
	if (zero)
		memset(p, 0, size);
	return p;
}

static __attribute__((noinline)) void floor_free(struct floor_heap *h, void *p, unsigned o)
{
	h->stack[o][h->n[o]++] = p;
}

#define FLOOR_ALIGN (ZP_PAGE_SIZE << (ORDERS - 1)) /* the largest block: 4 MiB */
static char *floor_map;				   /* map_thp()'s mapping, FLOOR_ALIGN longer than the parts */
static size_t floor_len;

/* @n threads' heaps in one reserved mapping (map_thp() exits when it
 * cannot be had). */
static struct floor_heap *floor_make(unsigned n)
{
	struct floor_heap *h = xmalloc(n * sizeof(*h));
	char *m;

	floor_len = n * FLOOR_PART + FLOOR_ALIGN;
	floor_map = map_thp(floor_len); /* 2 MiB-aligned: round up to the largest block */
	m = (char *)(((uintptr_t)floor_map + FLOOR_ALIGN - 1) & ~(uintptr_t)(FLOOR_ALIGN - 1));

	for (unsigned i = 0; i < n; i++) {
		size_t off = 0;

		h[i] = (struct floor_heap){0};
		for (int o = ORDERS - 1; o >= 0; o--) { /* each area aligned to its blocks' size */
			h[i].area[o] = m + i * FLOOR_PART + off;
			off += (size_t)LIVE * (ZP_PAGE_SIZE << o);
		}
	}
	return h;
}

/* Blocks carved so far by @n heaps, every order. */
static unsigned long floor_carved(const struct floor_heap *h, unsigned n)
{
	unsigned long c = 0;

	for (unsigned i = 0; h && i < n; i++)
		for (unsigned o = 0; o < ORDERS; o++)
			c += h[i].made[o];
	return c;
}

static void floor_done(struct floor_heap *h)
{
	if (!h)
		return;
	munmap(floor_map, floor_len);
	free(h);
}

struct cw {
	struct zp_arena *a;
	struct floor_heap *fh; /* a floor row's: this thread's heap */
	const struct peer *pe;
	double seconds;
	size_t touch_step; /* one byte written every touch_step bytes of a block (0: none) */
	bool nozero;	   /* --churn-zero none */
	uint64_t rng;
	unsigned long ops;
	double *lat;
	size_t nlat;
	unsigned long stride; /* a power of two: the latency of every stride-th call is kept */
	int failed;
	struct by_order bo;
};

static unsigned pick_order(uint64_t *rng)
{
	unsigned o = 0;

	while (o < 10 && (rnd64(rng) & 1))
		o++;
	return o;
}

/* Keep @dt when its turn comes; true when the buffer was compacted (a
 * pause of its own, outside every call). */
static bool keep_latency(struct cw *w, double dt)
{
	bool compacted = false;

	if (w->nlat == MAX_LAT) {
		for (size_t i = 0; i < MAX_LAT / 2; i++)
			w->lat[i] = w->lat[2 * i];
		w->nlat = MAX_LAT / 2;
		w->stride *= 2;
		compacted = true;
	}
	w->lat[w->nlat++] = dt;
	return compacted;
}

static void *churn(void *arg)
{
	struct cw *w = arg;
	void *p[LIVE];
	unsigned o[LIVE];
	size_t n = 0;
	double end = now_ns() + w->seconds * 1e9, t_end = 0;
	int pend = -1; /* --churn-orders: the kind of the time since the last call's return (t_end), or none */
	unsigned pend_o = 0;

	while (now_ns() < end) {
		for (int k = 0; k < 64; k++) {
			uint64_t r = rnd64(&w->rng);
			bool alloc = n < LIVE && (n == 0 || (r & 2));
			unsigned ord = alloc ? pick_order(&w->rng) : 0; /* before the clock starts */
			double t0 = now_ns(), t1, dt, gap = t0 - t_end;
			int kind;

			if (alloc) {
				bool zero = !w->nozero && (r & 4);
				size_t size = ZP_PAGE_SIZE << ord;
				void *q;

				if (w->a)
					q = zp_alloc_pages(w->a, zero ? ZP_GFP_ZERO : 0, ord, ZP_USER_ADDR_NONE);
				else if (w->fh)
					q = floor_alloc(w->fh, ord, zero);
				else
					q = zero ? w->pe->zalloc(size) : w->pe->alloc(size);
				t1 = now_ns();
				dt = t1 - t0;
				if (!q) {
					w->failed++;
					pend = -1;
					continue;
				}
				kind = zero ? K_ZALLOC : K_ALLOC;
				for (size_t off = 0; w->touch_step && off < size; off += w->touch_step)
					((volatile char *)q)[off] = 1;
				p[n] = q;
				o[n++] = ord;
			} else {
				size_t i = (size_t)(r >> 8) % n;

				if (w->a)
					zp_free_pages(w->a, p[i], o[i]);
				else if (w->fh)
					floor_free(w->fh, p[i], o[i]);
				else
					w->pe->release(p[i], ZP_PAGE_SIZE << o[i]);
				t1 = now_ns();
				dt = t1 - t0;
				kind = K_FREE;
				ord = o[i];
				p[i] = p[--n];
				o[i] = o[n];
			}
			/* outside the timed calls: the previous call's gap, this one */
			if (opt_churn_orders) {
				if (pend >= 0) {
					w->bo.sum[pend_o][pend] += gap;
					w->bo.n[pend_o][pend]++;
				}
				w->bo.sum[ord][kind] += dt;
				w->bo.n[ord][kind]++;
				pend = kind + 1; /* K_AFTER, K_ZAFTER, K_FAFTER */
				pend_o = ord;
			}
			if (!(w->ops++ & (w->stride - 1)) && keep_latency(w, dt))
				pend = -1; /* the compaction is no call's */
			t_end = t1;
		}
	}
	while (n--) {
		if (w->a)
			zp_free_pages(w->a, p[n], o[n]);
		else if (w->fh)
			floor_free(w->fh, p[n], o[n]);
		else
			w->pe->release(p[n], ZP_PAGE_SIZE << o[n]);
	}
	return NULL;
}

#define RUNS 3

/* A row: an allocator and a thread count, and its figures over the runs. */
struct churn_row {
	char *name;
	const struct peer *pe; /* NULL: zpage, or the floor */
	bool floor;	       /* --churn-floor's row */
	unsigned nt;
	double opsps[RUNS];
	double *lat;
	size_t nlat;
	long failed;
	struct by_order bo[RUNS]; /* the threads' sums, per run */
};

/* Run @r of row @x, in @arena when it is zpage's, on @fh's first heaps
 * when it is the floor: its threads churn for a fixed time.  @r < 0: a
 * warm-up run, not recorded. */
static void run_once(struct churn_row *x, int r, struct zp_arena *arena, struct floor_heap *fh)
{
	double seconds = 0.4 * opt_scale < 0.05 ? 0.05 : 0.4 * opt_scale, t0;
	struct cw *w = xmalloc(x->nt * sizeof(*w));
	pthread_t *t = xmalloc(x->nt * sizeof(*t));
	struct zp_arena *a = x->pe || x->floor ? NULL : arena;
	unsigned long ops = 0;

	if (r < 0)
		progress("churn: %s warm-up run", x->name);
	else
		progress("churn: %s run %d/%d", x->name, r + 1, RUNS);
	t0 = now_ns();
	for (unsigned i = 0; i < x->nt; i++) {
		w[i] = (struct cw){.a = a,
				   .fh = x->floor ? &fh[i] : NULL,
				   .pe = x->pe,
				   .seconds = seconds,
				   .touch_step = opt_churn_touch == TOUCH_PAGE	  ? ZP_PAGE_SIZE
						 : opt_churn_touch == TOUCH_BLOCK ? SIZE_MAX
										  : 0,
				   .nozero = opt_churn_nozero,
				   .rng = 0x2545f4914f6cdd1dull * (i + 1) + (uint64_t)r,
				   .lat = xmalloc(MAX_LAT * sizeof(double)),
				   .stride = 1};
		pthread_create(&t[i], NULL, churn, &w[i]);
	}
	for (unsigned i = 0; i < x->nt; i++) {
		pthread_join(t[i], NULL);
		if (r < 0) {
			free(w[i].lat);
			continue;
		}
		ops += w[i].ops;
		x->failed += w[i].failed;
		for (int o = 0; o < ORDERS; o++) {
			for (int k = 0; k < NR_KINDS; k++) {
				x->bo[r].sum[o][k] += w[i].bo.sum[o][k];
				x->bo[r].n[o][k] += w[i].bo.n[o][k];
			}
		}
		/* keep every 8th latency: enough for p99.9, bounded memory
		 * (at most MAX_LAT / 8 a thread and run: lat has room) */
		for (size_t k = 0; k < w[i].nlat; k += 8)
			x->lat[x->nlat++] = w[i].lat[k];
		free(w[i].lat);
	}
	if (r >= 0)
		x->opsps[r] = ops / ((now_ns() - t0) / 1e9) / 1e6;
	free(w);
	free(t);
}

static const char *const col[2][3] = {
	{"throughput, 1 B/page", "throughput, 1 B/block", "throughput, no writes"},
	{"throughput, 1 B/page, no zeroing", "throughput, 1 B/block, no zeroing", "throughput, no writes, no zeroing"},
};
/* what --churn-touch writes, and its option value */
static const char *const touch[3][2] = {
	{"one byte per page of every block, as a program would", "page"},
	{"one byte per block, its first", "block"},
	{"none: the blocks are never written", "none"},
};

/* Outside the default mode every other column and table says the mode, so
 * that compare never matches them against the default's: ", 1 B/block" and
 * so on; "" in the default mode. */
static const char *mode_suffix(void)
{
	bool dflt = !opt_churn_nozero && opt_churn_touch == TOUCH_PAGE;

	return dflt ? "" : col[opt_churn_nozero][opt_churn_touch] + strlen("throughput");
}

static void record(struct churn_row *x)
{
	double p[2] = {pct(x->lat, x->nlat, 99), pct(x->lat, x->nlat, 99.9)};
	const char *mode = mode_suffix();
	char *lat[3] = {xasprintf("latency%s", mode), xasprintf("latency p99%s", mode),
			xasprintf("latency p99.9%s", mode)};

	result("churn", x->name, col[opt_churn_nozero][opt_churn_touch], "M ops/s", x->opsps, RUNS);
	result("churn", x->name, lat[0], "ns", x->lat, x->nlat);
	result("churn", x->name, lat[1], "ns", &p[0], 1);
	result("churn", x->name, lat[2], "ns", &p[1], 1);
	for (int i = 0; i < 3; i++)
		free(lat[i]);
	if (x->failed)
		note("churn", "%s: %ld allocations failed (arena or memory exhausted)", x->name, x->failed);
	free(x->lat);
}

/* --churn-orders: a table per thread count, a row per allocator and order
 * (the allocators of one order together; the name starts with the
 * allocator's, as charts colour by it), a column per kind of call. */
static void record_orders(struct churn_row *x, size_t n)
{
	for (size_t c = 0; c < n; c++) {
		if (c && x[c].nt == x[c - 1].nt)
			continue; /* the first row of a thread count */
		char *sc = xasprintf("churn orders, %u thread%s%s", x[c].nt, x[c].nt > 1 ? "s" : "", mode_suffix());

		for (int o = 0; o < ORDERS; o++) {
			for (size_t j = c; j < n && x[j].nt == x[c].nt; j++) {
				char *row = xasprintf("%.*s, order %d", (int)strcspn(x[j].name, ","), x[j].name, o);

				for (int k = 0; k < NR_KINDS; k++) {
					double v[RUNS];
					size_t nv = 0;

					for (int r = 0; r < RUNS; r++)
						if (x[j].bo[r].n[o][k])
							v[nv++] = x[j].bo[r].sum[o][k] / (double)x[j].bo[r].n[o][k];
					if (nv)
						result(sc, row, kind_name[k], "ns", v, nv);
				}
				free(row);
			}
		}
		note(sc, "mean time of a call by block order (orders 0..10: 4 KiB..4 MiB), a sample a run; "
			 "zeroing: zero-filled (the peers' calloc); after: from a call's return to the next "
			 "call, the writes into the block (%s) and the loop's own work, which is all that "
			 "follows a free; every time includes a clock read (~20 ns)",
		     touch[opt_churn_touch][0]);
		free(sc);
	}
}

/* The rows (zpage, each peer and with --churn-floor the floor, at 1 and
 * --threads threads) run one after the other, RUNS times, in an order
 * rotating from run to run. */
void sc_churn(void)
{
	unsigned counts[2] = {1, opt_threads};
	struct churn_row *x = xmalloc(2 * (NR_PEERS + 2) * sizeof(*x));
	size_t n = 0;
	struct rotation rot;

	for (int c = 0; c < (opt_threads > 1 ? 2 : 1); c++) {
		for (int i = -1; i <= NR_PEERS; i++) { /* zpage, the peers, the floor */
			bool peer = i >= 0 && i < NR_PEERS;

			if ((peer && !peers[i].available) || (i == NR_PEERS && !opt_churn_floor))
				continue;
			x[n] = (struct churn_row){.name = xasprintf("%s, %u thread%s",
								    i < 0 ? "zpage" : peer ? peers[i].name : "floor",
								    counts[c], counts[c] > 1 ? "s" : ""),
						  .pe = peer ? &peers[i] : NULL,
						  .floor = i == NR_PEERS,
						  .nt = counts[c],
						  .lat = xmalloc(RUNS * counts[c] * (MAX_LAT / 8) * sizeof(double))};
			n++;
		}
	}
	/* one arena for zpage's rows, as a long-lived program keeps one, and
	 * a warm-up run of every row first: no row's recorded runs pay the
	 * first touch of the memory it works in (each peer's heap lives as
	 * long as the process, and in a repeated or later scenario is warm
	 * already) */
	struct zp_arena *arena = arena_or_die(NULL);
	unsigned most = opt_threads > 1 ? opt_threads : 1;
	struct floor_heap *fh = opt_churn_floor ? floor_make(most) : NULL; /* each row's thread i: heap i */

	unsigned long warm_carved;

	for (size_t j = 0; j < n; j++)
		run_once(&x[j], -1, arena, fh);
	warm_carved = floor_carved(fh, most);
	rotation_init(&rot, "churn", "run", n, RUNS);
	for (int r = 0; r < RUNS; r++) {
		const size_t *order = rotation_next(&rot);

		for (size_t j = 0; j < n; j++)
			run_once(&x[order[j]], r, arena, fh);
	}
	arena_done(arena, "churn", "zpage rows");
	if (fh)
		note("churn", "floor: %lu blocks carved in the warm-up runs, %lu more (first touched, unless their "
			      "2 MiB page was) in the recorded ones",
		     warm_carved, floor_carved(fh, most) - warm_carved);
	floor_done(fh);
	for (size_t j = 0; j < n; j++)
		record(&x[j]);
	if (opt_churn_orders)
		record_orders(x, n);
	for (size_t j = 0; j < n; j++)
		free(x[j].name);
	free(x);
	reference("churn", "glibc, 1 thread");
	note("churn", "%s; orders 0..10, P(order >= k) = 2^-k; latency: every call, alloc and free",
	     opt_churn_nozero ? "no allocation zero-filled (--churn-zero none)" : "half the allocations zero-filled");
	note("churn", "touch: %s (--churn-touch %s)", touch[opt_churn_touch][0], touch[opt_churn_touch][1]);
	if (opt_churn_floor)
		note("churn", "floor (--churn-floor): the same loop with no allocator, each thread's freed "
			      "blocks on a stack per order, the newest taken again, a memset for a zero-filled "
			      "one: an estimate of what the loop and its memory cost without one, not a peer");
	rotation_done(&rot);
}
