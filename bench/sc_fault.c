/* SPDX-License-Identifier: MIT */
/*
 * fault: the seed's situation.  Get a zeroed 2 MiB block for an address and
 * write the page at that address, as a page fault does; time from the
 * request to that first write done, then the time to read the 64 KiB around
 * it (one load per cache line).
 *
 * Every row follows the same pattern, per round: take N blocks, write them
 * all, give them all back (N x 2 MiB = 128 MiB, 4x the L3, so nothing stays
 * in cache), then time N requests.  Rows:
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

#include "bench.h"

#define BLK ((size_t)2 << 20)
#define SC  "fault"

static size_t nblocks(void)
{
	size_t n = (size_t)(64 * opt_scale);

	return n < 4 ? 4 : n > 256 ? 256 : n;
}

struct acc {
	double *touch, *read;
	size_t n;
};

static void sample(struct acc *x, char *blk, size_t t, double t0)
{
	blk[(t << ZP_PAGE_SHIFT) + 64] = 1;
	x->touch[x->n] = (now_ns() - t0) / 1e3;
	x->read[x->n++] = read_window(blk, BLK, t) / 1e3;
}

static void record(const char *row, struct acc *x)
{
	result(SC, row, "first touch", "us", x->touch, x->n);
	result(SC, row, "read 64K after", "us", x->read, x->n);
}

enum zstate_src { FRESH, ZEROED, REPORTED, DIRTY };

/* Take @n 2 MiB blocks, write them, give them all back: dirty free memory
 * that is no longer in cache (@p is scratch space for n pointers). */
static void dirty_blocks(struct zp_arena *a, char **p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		p[i] = zp_alloc_pages(a, 0, 9, ZP_USER_ADDR_NONE);
		if (!p[i])
			die("fault: allocation failed");
		memset(p[i], 0x5a, BLK);
	}
	for (size_t i = 0; i < n; i++)
		zp_free_pages(a, p[i], 9);
}

static void zpage_round(enum zstate_src src, struct acc *x, uint64_t *rng)
{
	size_t n = nblocks();
	struct zp_config cfg = {.size = (size_t)1 << 30};
	struct zp_arena *a = arena_or_die(&cfg);
	char **p = xmalloc(n * sizeof(*p));

	if (src != FRESH) {
		dirty_blocks(a, p, n);
		if (src == ZEROED && zp_arena_prezero(a, n * BLK) <= 0)
			die("fault: pre-zeroing failed");
		if (src == REPORTED && zp_arena_report(a) <= 0)
			die("fault: reporting failed");
	}
	for (size_t i = 0; i < n; i++) {
		size_t t = rnd64(rng) % 512;
		double t0 = now_ns();

		p[i] = zp_alloc_pages(a, ZP_GFP_ZERO, 9, (uintptr_t)0x7f0000000000ull + (t << ZP_PAGE_SHIFT));
		if (!p[i])
			die("fault: allocation failed");
		sample(x, p[i], t, t0);
	}
	arena_done(a, "fault", "zpage rows");
	free(p);
}

static char *map_aligned(size_t len)
{
	char *m = mmap(NULL, len + BLK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uintptr_t a;

	if (m == MAP_FAILED)
		die("fault: mmap failed");
	a = ((uintptr_t)m + BLK - 1) & ~(uintptr_t)(BLK - 1);
	madvise((void *)a, len, MADV_HUGEPAGE);
	return (char *)a; /* the slack is left mapped; freed with the whole at exit */
}

static void kernel_round(bool reuse, struct acc *x, uint64_t *rng)
{
	size_t n = nblocks();
	char *m = map_aligned(n * BLK);

	if (reuse)
		memset(m, 0x5a, n * BLK);
	for (size_t i = 0; i < n; i++) {
		size_t t = rnd64(rng) % 512;
		char *b = m + i * BLK;
		double t0 = now_ns();

		if (reuse && madvise(b, BLK, MADV_DONTNEED))
			die("fault: madvise failed");
		sample(x, b, t, t0);
	}
	munmap(m, n * BLK);
}

static void peer_round(const struct peer *pe, struct acc *x, uint64_t *rng)
{
	size_t n = nblocks();
	char **p = xmalloc(n * sizeof(*p));

	for (size_t i = 0; i < n; i++) {
		p[i] = pe->zalloc(BLK);
		if (!p[i])
			die("fault: %s allocation failed", pe->name);
		memset(p[i], 0x5a, BLK);
	}
	for (size_t i = 0; i < n; i++)
		pe->release(p[i], BLK);
	for (size_t i = 0; i < n; i++) {
		size_t t = rnd64(rng) % 512;
		double t0 = now_ns();

		p[i] = pe->zalloc(BLK);
		if (!p[i])
			die("fault: %s allocation failed", pe->name);
		sample(x, p[i], t, t0);
	}
	for (size_t i = 0; i < n; i++)
		pe->release(p[i], BLK);
	free(p);
}

/*
 * After idling: memory given back (kernel: MADV_DONTNEED; zpage: reported)
 * sits idle for opt_idle seconds, past the guest kernel's free page
 * reporting delay, so on a VM with a reporting balloon the hypervisor may
 * have discarded it: touching it again costs a hypervisor fault on top of
 * the guest's.  Both rows share one idle period.
 */
static void idle_rows(struct acc *kx, struct acc *zx, uint64_t *rng)
{
	size_t n = nblocks();
	char *m = map_aligned(n * BLK);
	struct zp_config cfg = {.size = (size_t)1 << 30};
	struct zp_arena *a = arena_or_die(&cfg);
	char **p = xmalloc(n * sizeof(*p));
	struct timespec ts = {(time_t)opt_idle, (long)((opt_idle - (time_t)opt_idle) * 1e9)};

	memset(m, 0x5a, n * BLK);
	if (madvise(m, n * BLK, MADV_DONTNEED))
		die("fault: madvise failed");
	dirty_blocks(a, p, n);
	if (zp_arena_report(a) <= 0)
		die("fault: reporting failed");
	progress("fault: idling %.1f s", opt_idle);
	nanosleep(&ts, NULL);
	/* alternate the two rows block by block: the guest reports freed
	 * memory in budgeted passes, so a row touched later would find more
	 * of its memory discarded */
	for (size_t i = 0; i < n; i++) {
		size_t t = rnd64(rng) % 512;
		double t0 = now_ns();

		sample(kx, m + i * BLK, t, t0);
		t = rnd64(rng) % 512;
		t0 = now_ns();
		p[i] = zp_alloc_pages(a, ZP_GFP_ZERO, 9, (uintptr_t)0x7f0000000000ull + (t << ZP_PAGE_SHIFT));
		if (!p[i])
			die("fault: allocation failed");
		sample(zx, p[i], t, t0);
	}
	munmap(m, n * BLK);
	arena_done(a, "fault", "rows after idle");
	free(p);
}

void sc_fault(void)
{
	static const char *zrows[] = {"zpage, fresh (OS-zeroed)", "zpage, zeroed (pre-zeroed)",
				      "zpage, reported (MADV_DONTNEED)", "zpage, dirty (zpage clears)"};
	enum { ROUNDS = 3, NROWS = 4 + 2 + NR_PEERS + 2 };
	size_t cap = ROUNDS * nblocks();
	struct acc x[NROWS];
	uint64_t rng = 0x1234567;

	for (int r = 0; r < NROWS; r++)
		x[r] = (struct acc){xmalloc(cap * sizeof(double)), xmalloc(cap * sizeof(double)), 0};
	/* rounds interleave the rows so drift hits all alike */
	for (int round = 0; round < ROUNDS; round++) {
		for (int s = 0; s < 4; s++) {
			progress("fault: round %d/%d: %s", round + 1, ROUNDS, zrows[s]);
			zpage_round((enum zstate_src)s, &x[s], &rng);
		}
		progress("fault: round %d/%d: kernel", round + 1, ROUNDS);
		kernel_round(false, &x[4], &rng);
		kernel_round(true, &x[5], &rng);
		for (int i = 0; i < NR_PEERS; i++) {
			if (!peers[i].available)
				continue;
			progress("fault: round %d/%d: %s", round + 1, ROUNDS, peers[i].name);
			peer_round(&peers[i], &x[6 + i], &rng);
		}
	}
	if (opt_idle > 0)
		idle_rows(&x[NROWS - 2], &x[NROWS - 1], &rng);
	for (int s = 0; s < 4; s++)
		record(zrows[s], &x[s]);
	record("kernel, new THP mapping", &x[4]);
	record("kernel, after MADV_DONTNEED", &x[5]);
	for (int i = 0; i < NR_PEERS; i++) {
		char row[48];

		snprintf(row, sizeof(row), "%s calloc", peers[i].name);
		if (peers[i].available)
			record(row, &x[6 + i]);
		else
			note(SC, "%s: not installed", peers[i].name);
	}
	if (opt_idle > 0) {
		char row[48];

		snprintf(row, sizeof(row), "kernel, MADV_DONTNEED + %gs idle", opt_idle);
		record(row, &x[NROWS - 2]);
		snprintf(row, sizeof(row), "zpage, reported + %gs idle", opt_idle);
		record(row, &x[NROWS - 1]);
	}
	reference(SC, "kernel, after MADV_DONTNEED");
	note(SC,
	     "first touch: from the request to the first write at the target page done; 2 MiB blocks, %zu per "
	     "row per round, 3 rounds",
	     nblocks());
	for (int r = 0; r < NROWS; r++) {
		free(x[r].touch);
		free(x[r].read);
	}
}
