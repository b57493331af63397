/* SPDX-License-Identifier: MIT */
/*
 * fault: the seed's situation.  Get a zeroed 2 MiB block for an address and
 * write the page at that address, as a page fault does.  Each request is
 * timed three ways:
 *   first touch          from the request to that first write done
 *   read 64K after       then the 64 KiB around it read, one load per cache
 *                        line (what the caller touches next)
 *   whole block written  from the request to one byte written in every
 *                        4 KiB page of the block (the read excluded): what
 *                        using the block costs.  A row that maps its block
 *                        lazily (calloc's fresh mmap) pays here the faults
 *                        its first touch deferred.
 *
 * Every row follows the same pattern, per round: take N blocks, write them
 * all, give them all back (N x 2 MiB = 128 MiB at --scale 1, 4x the L3, so
 * nothing stays in cache; less at smaller scales), then N requests.  A round prepares every row's memory first,
 * writes twice the last-level cache of scratch memory (so no row starts
 * with its memory in the cache because it was prepared last), then
 * interleaves the rows request by request, in an order that rotates
 * from request to request (rotate.c): no row is always the first to touch
 * memory the OS or the hypervisor has to find.  Rows:
 *   zpage fresh      a new arena: OS-zeroed memory, never touched
 *   zpage zeroed     the freed blocks pre-zeroed (zp_arena_prezero, untimed)
 *   zpage reported   the freed blocks reported to the OS (zp_arena_report)
 *   zpage dirty      the freed blocks as they are: zpage clears them
 *   kernel, new mapping        first touch of a fresh THP mapping
 *   kernel, after MADV_DONTNEED  madvise(MADV_DONTNEED) + touch: reuse
 *   glibc / jemalloc / mimalloc / tcmalloc   their calloc-like call
 *   with --idle S (default 6): the kernel's and zpage's given-back memory
 *   again after S seconds idle (see idle_rows())
 */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "os.h"

#define BLK    ((size_t)2 << 20)
#define SC     "fault"
#define ROUNDS 3
/* the address a request is for: target page @t of a block */
#define UADDR(t) ((uintptr_t)0x7f0000000000ull + ((t) << ZP_PAGE_SHIFT))

enum { Z_FRESH, Z_ZEROED, Z_REPORTED, Z_DIRTY, K_NEW, K_REUSE, PEER0, NROWS = PEER0 + NR_PEERS };

static size_t nblocks(void)
{
	size_t n = (size_t)(64 * opt_scale);

	return n < 4 ? 4 : n > 256 ? 256 : n;
}

/* A row: its samples, and the memory of the round in progress. */
struct row {
	char *name;
	double *touch, *read, *whole;
	size_t n;
	struct zp_arena *a; /* zpage rows */
	char *m;	    /* kernel rows: the mapping */
	char **p;	    /* zpage and peer rows: the blocks */
};

/* The request for @blk (target page @t) started at @t0 and returned: time
 * the first write, the read around it, and the writes to every page. */
static void sample(struct row *x, char *blk, size_t t, double t0)
{
	double t1, t2;

	blk[(t << ZP_PAGE_SHIFT) + 64] = 1;
	t1 = now_ns();
	x->read[x->n] = read_window(blk, BLK, t) / 1e3;
	t2 = now_ns();
	touch_pages(blk, BLK);
	x->whole[x->n] = (t1 - t0 + now_ns() - t2) / 1e3;
	x->touch[x->n++] = (t1 - t0) / 1e3;
}

static void record(const struct row *x)
{
	result(SC, x->name, "first touch", "us", x->touch, x->n);
	result(SC, x->name, "read 64K after", "us", x->read, x->n);
	result(SC, x->name, "whole block written", "us", x->whole, x->n);
}

static struct zp_arena *new_arena(void)
{
	struct zp_config cfg = {.size = (size_t)1 << 30};

	return arena_or_die(&cfg);
}

/* Row @k's memory for a round, untimed. */
static void prepare(int k, struct row *x)
{
	size_t n = nblocks();

	if (k <= Z_DIRTY) {
		x->a = new_arena();
		if (k != Z_FRESH)
			dirty_blocks(x->a, x->p, n);
		if (k == Z_ZEROED && zp_arena_prezero(x->a, n * BLK) <= 0)
			die("fault: pre-zeroing failed");
		if (k == Z_REPORTED && zp_arena_report(x->a) <= 0)
			die("fault: reporting failed");
	} else if (k <= K_REUSE) {
		x->m = map_thp(n * BLK);
		if (k == K_REUSE)
			memset(x->m, 0x5a, n * BLK);
	} else {
		const struct peer *pe = &peers[k - PEER0];

		for (size_t i = 0; i < n; i++) {
			x->p[i] = pe->zalloc(BLK);
			if (!x->p[i])
				die("fault: %s allocation failed", pe->name);
			memset(x->p[i], 0x5a, BLK);
		}
		for (size_t i = 0; i < n; i++)
			pe->release(x->p[i], BLK);
	}
}

/* After every row's preparation, untimed: write scratch memory of twice the
 * last-level cache, so that the rows prepared last keep none of their
 * memory in the cache (their writes would otherwise be the newest there:
 * the table order would decide who starts warm). */
static void evict_caches(char **scratch, size_t *len)
{
	if (!*scratch) {
		/* the library's reading (sysfs): glibc's sysconf says 10x the
		 * cache in some VMs, which made this 640 MiB instead of 64 */
		size_t llc = os_llc_bytes();

		*len = 2 * (llc > ((size_t)8 << 20) ? llc : (size_t)32 << 20);
		*scratch = map_thp(*len);
	}
	memset(*scratch, 0x3c, *len);
}

/* Row @k's request @i of the round, timed. */
static void request(int k, struct row *x, size_t i, uint64_t *rng)
{
	size_t t = rnd64(rng) % 512;
	double t0 = now_ns();
	char *b;

	if (k <= Z_DIRTY) {
		b = x->p[i] = zp_alloc_pages(x->a, ZP_GFP_ZERO, 9, UADDR(t));
	} else if (k <= K_REUSE) {
		b = x->m + i * BLK;
		if (k == K_REUSE && madvise(b, BLK, MADV_DONTNEED))
			die("fault: madvise failed");
	} else {
		b = x->p[i] = peers[k - PEER0].zalloc(BLK);
	}
	if (!b)
		die("fault: %s: allocation failed", x->name);
	sample(x, b, t, t0);
}

/* Row @k's memory back at the end of a round. */
static void finish(int k, struct row *x)
{
	size_t n = nblocks();

	if (k <= Z_DIRTY) {
		arena_done(x->a, SC, "zpage rows");
	} else if (k <= K_REUSE) {
		munmap(x->m, n * BLK);
	} else {
		for (size_t i = 0; i < n; i++)
			peers[k - PEER0].release(x->p[i], BLK);
	}
}

/*
 * After idling: memory given back (kernel: MADV_DONTNEED; zpage: reported)
 * sits idle for opt_idle seconds, past the guest kernel's free page
 * reporting delay, so on a VM with a reporting balloon the hypervisor may
 * have discarded it: touching it again costs a hypervisor fault on top of
 * the guest's.  Both rows share one idle period.
 */
static void idle_rows(struct row *kx, struct row *zx, struct rotation *rot, uint64_t *rng)
{
	size_t n = nblocks();
	struct timespec ts = {(time_t)opt_idle, (long)((opt_idle - (time_t)opt_idle) * 1e9)};

	kx->m = map_thp(n * BLK);
	memset(kx->m, 0x5a, n * BLK);
	if (madvise(kx->m, n * BLK, MADV_DONTNEED))
		die("fault: madvise failed");
	zx->a = new_arena();
	dirty_blocks(zx->a, zx->p, n);
	if (zp_arena_report(zx->a) <= 0)
		die("fault: reporting failed");
	progress("fault: idling %.1f s", opt_idle);
	nanosleep(&ts, NULL);
	/* alternate the two rows block by block, the first of the two
	 * rotating: the guest reports freed memory in budgeted passes, so a
	 * row touched later would find more of its memory discarded */
	rotation_init(rot, SC, "idle request", 2, n);
	for (size_t i = 0; i < n; i++) {
		const size_t *order = rotation_next(rot);

		for (int j = 0; j < 2; j++) /* K_NEW: no madvise at the request */
			request(order[j] ? Z_REPORTED : K_NEW, order[j] ? zx : kx, i, rng);
	}
	munmap(kx->m, n * BLK);
	arena_done(zx->a, SC, "rows after idle");
}

void sc_fault(void)
{
	static const char *names[PEER0] = {"zpage, fresh (OS-zeroed)",	      "zpage, zeroed (pre-zeroed)",
					   "zpage, reported (MADV_DONTNEED)", "zpage, dirty (zpage clears)",
					   "kernel, new THP mapping",	      "kernel, after MADV_DONTNEED"};
	size_t n = nblocks(), nact = 0;
	struct row x[NROWS + 2]; /* + the two after idle */
	int act[NROWS];
	struct rotation rot, idle_rot;
	uint64_t rng = 0x1234567;
	char *scratch = NULL;
	size_t scratch_len = 0;

	for (int k = 0; k < NROWS + 2; k++) {
		x[k] = (struct row){.touch = xmalloc(ROUNDS * n * sizeof(double)),
				    .read = xmalloc(ROUNDS * n * sizeof(double)),
				    .whole = xmalloc(ROUNDS * n * sizeof(double)),
				    .p = xmalloc(n * sizeof(char *))};
		if (k < PEER0)
			x[k].name = xstrdup(names[k]);
		else if (k < NROWS)
			x[k].name = xasprintf("%s calloc", peers[k - PEER0].name);
		else
			x[k].name = xasprintf(k == NROWS ? "kernel, MADV_DONTNEED + %gs idle"
							 : "zpage, reported + %gs idle",
					      opt_idle);
		if (k < NROWS && (k < PEER0 || peers[k - PEER0].available))
			act[nact++] = k;
	}
	rotation_init(&rot, SC, "request", nact, ROUNDS * n);
	for (int round = 0; round < ROUNDS; round++) {
		progress("fault: round %d/%d", round + 1, ROUNDS);
		for (size_t j = 0; j < nact; j++)
			prepare(act[j], &x[act[j]]);
		evict_caches(&scratch, &scratch_len);
		for (size_t i = 0; i < n; i++) {
			const size_t *order = rotation_next(&rot);

			for (size_t j = 0; j < nact; j++)
				request(act[order[j]], &x[act[order[j]]], i, &rng);
		}
		for (size_t j = 0; j < nact; j++)
			finish(act[j], &x[act[j]]);
	}
	if (opt_idle > 0)
		idle_rows(&x[NROWS], &x[NROWS + 1], &idle_rot, &rng);
	for (int k = 0; k < NROWS + 2; k++) {
		if (k >= NROWS ? opt_idle > 0 : k < PEER0 || peers[k - PEER0].available)
			record(&x[k]);
		else if (k < NROWS)
			note(SC, "%s: not installed", peers[k - PEER0].name);
	}
	reference(SC, "kernel, after MADV_DONTNEED");
	counterpart(SC, names[0], names[4]); /* the report's reading: OS-zeroed memory against a new mapping */
	if (opt_idle > 0)
		counterpart(SC, x[NROWS + 1].name, x[NROWS].name);
	note(SC,
	     "first touch: from the request to the first write at the target page done; whole block written: "
	     "from the request to one byte written in every 4 KiB page (the 64 KiB read excluded), so a lazily "
	     "mapped block pays the faults it deferred; 2 MiB blocks, %zu per row per round, %d rounds",
	     n, ROUNDS);
	rotation_done(&rot);
	if (opt_idle > 0)
		rotation_done(&idle_rot);
	if (scratch)
		munmap(scratch, scratch_len);
	note(SC,
	     "2 MiB at the calibration's rates: %.0f us to clear (non-temporal); %.0f us of first writes to fresh "
	     "memory (median of 3 fresh mappings: a reference, not a bound; far slower when the hypervisor had discarded the "
	     "memory)",
	     (double)BLK / calib.nt / 1e3, (double)BLK / calib.touch / 1e3);
	for (int k = 0; k < NROWS + 2; k++) {
		free(x[k].name);
		free(x[k].touch);
		free(x[k].read);
		free(x[k].whole);
		free(x[k].p);
	}
}
