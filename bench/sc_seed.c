/* SPDX-License-Identifier: MIT */
/*
 * seed: the measurement of the patch series the seed message comes from
 * ("mm/virtio: skip redundant zeroing of host-zeroed reported pages",
 * M. S. Tsirkin, 2026), redone in user space.  The series: with THP, in a
 * 2 GB VM, a program allocates 256 MB of anonymous memory and writes it;
 * the guest had reported that memory to the host, which zero-filled it;
 * task-clock with the guest trusting the host's zeroes (skipping its
 * clear) against clearing the memory again.
 *
 * Here zpage's arena is the guest's page allocator, and madvise(
 * MADV_DONTNEED) (zp_arena_report) is the report to the host: the kernel
 * zero-fills those pages at the next touch, as the host does.  A sample
 * takes 256 MiB as 128 zeroing order-9 (2 MiB) allocations, writing one
 * byte in every 4 KiB page of each block as soon as it has it.  Rows:
 *   zpage, reported: skips its clear  zpage trusts MADV_DONTNEED's
 *                    zero-fill (what the series does with the host's)
 *   zpage, reported: clears again     the same madvise() call, under a
 *                    backend (zp_test_set_backend) that does not promise
 *                    zeroes: zpage clears every page again, after the
 *                    kernel zero-filled it at the fault (the double
 *                    zeroing the series removes)
 *   zpage, dirty resident: clears     written and freed, not reported:
 *                    zpage clears it, non-temporal far from the target
 *   kernel, fresh THP mapping         mmap + MADV_HUGEPAGE + the same
 *                    writes (munmap untimed)
 * Before each zpage row's sample, its whole arena (exactly the size taken,
 * so no never-used memory is left to take instead) is written, freed and,
 * for the reported rows, reported: all untimed.  Timed: task-clock
 * (CLOCK_THREAD_CPUTIME_ID, this thread's CPU time, page faults and the
 * kernel's zero-fill included) and wall time, per 256 MiB.  Rows are
 * interleaved sample by sample in a rotating order; zp_arena_stats
 * counts what each zpage row cleared, and the note says it.
 */
#include <stdio.h>
#include <sys/mman.h>

#include "bench.h"
#include "internal.h"

#define SC  "seed"
#define BLK ((size_t)2 << 20)

enum { S_SKIP, S_AGAIN, S_DIRTY, S_KERNEL, NROWS };
static const char *const names[NROWS] = {"zpage, reported: skips its clear", "zpage, reported: clears again",
					 "zpage, dirty resident: clears", "kernel, fresh THP mapping"};

/* 256 MiB as the series; 32 MiB at a smoke-test scale (then scaled up) */
static size_t seed_bytes(void)
{
	return (size_t)(opt_scale < 0.25 ? 32 : 256) << 20;
}

struct seed_row {
	struct zp_arena *a; /* the zpage rows */
	double *task, *wall;
	uint64_t cleared, skipped; /* pages, over every sample */
};

static struct zp_arena *seed_arena(int k)
{
	struct zp_config cfg = {.size = seed_bytes()};
	struct zp_arena *a = arena_or_die(&cfg);

	if (k == S_AGAIN) {
		/* the same madvise(MADV_DONTNEED), not trusted to zero-fill */
		struct zp_backend b = os_backend_dontneed;

		b.name = "madv_dontneed, zeroes not trusted";
		b.zeroes = false;
		zp_test_set_backend(a, &b);
	}
	return a;
}

/* One sample of row @k: its task-clock and wall time in ms per 256 MiB. */
static void seed_sample(int k, struct seed_row *x, char **p, size_t s)
{
	size_t bytes = seed_bytes(), nblk = bytes / BLK;
	double per = (double)((size_t)256 << 20) / (double)bytes, c0, w0;
	struct zp_stats st0, st1;
	char *m = NULL;

	if (k != S_KERNEL) {
		dirty_blocks(x->a, p, nblk);
		if (k != S_DIRTY && zp_arena_report(x->a) <= 0)
			die("seed: %s: reporting failed", names[k]);
		zp_arena_stats(x->a, &st0);
	}
	c0 = thread_cpu_ns();
	w0 = now_ns();
	if (k == S_KERNEL) {
		m = map_thp(bytes);
		touch_pages(m, bytes);
	} else {
		for (size_t i = 0; i < nblk; i++) {
			p[i] = zp_alloc_pages(x->a, ZP_GFP_ZERO, 9, (uintptr_t)0x7f0000000000ull + i * BLK);
			if (!p[i])
				die("seed: %s: allocation failed", names[k]);
			touch_pages(p[i], BLK);
		}
	}
	x->task[s] = (thread_cpu_ns() - c0) / 1e6 * per;
	x->wall[s] = (now_ns() - w0) / 1e6 * per;
	if (k == S_KERNEL) {
		munmap(m, bytes);
		return;
	}
	zp_arena_stats(x->a, &st1);
	x->cleared += st1.pages_cleared - st0.pages_cleared;
	x->skipped += st1.pages_clear_skipped - st0.pages_clear_skipped;
	for (size_t i = 0; i < nblk; i++)
		zp_free_pages(x->a, p[i], 9);
}

static void seed_notes(const struct seed_row *x, size_t n)
{
	double skip = pct(x[S_SKIP].task, n, 50), again = pct(x[S_AGAIN].task, n, 50);
	double *r = xmalloc(n * sizeof(double)), paired;
	size_t pages = n * (seed_bytes() >> ZP_PAGE_SHIFT);

	for (size_t s = 0; s < n; s++)
		r[s] = x[S_SKIP].task[s] / x[S_AGAIN].task[s];
	paired = pct(r, n, 50);
	free(r);
	note(SC,
	     "a sample: %zu MiB as %zu zeroing 2 MiB allocations, one byte written in every 4 KiB page of each "
	     "as soon as it is had%s; %zu samples; figures per 256 MiB",
	     seed_bytes() >> 20, seed_bytes() / BLK,
	     seed_bytes() < ((size_t)256 << 20) ? " (smoke scale: scaled up to 256 MiB)" : "", n);
	note(SC, "reported: written, freed, given back with madvise(MADV_DONTNEED), which zero-fills at the next "
		 "touch as the series' host does; 'clears again' makes the same call under a backend that does not "
		 "promise zeroes, so zpage clears each page after the fault zero-filled it");
	note(SC,
	     "zp_arena_stats over all samples: skips its clear: %llu of %zu pages cleared, %llu skipped; clears "
	     "again: %llu cleared; dirty resident: %llu cleared",
	     (unsigned long long)x[S_SKIP].cleared, pages, (unsigned long long)x[S_SKIP].skipped,
	     (unsigned long long)x[S_AGAIN].cleared, (unsigned long long)x[S_DIRTY].cleared);
	if (x[S_SKIP].cleared || x[S_AGAIN].cleared < pages)
		note(SC, "WARNING: a reported row did not do what it is named for (above): do not read its figures");
	note(SC,
	     "the series, task-clock, THP, 256 MB in a 2 GB VM, clearing again -> skipping: RFC 179 -> 99 ms "
	     "(-45%%), RFC v2 191 -> 60 ms (-69%%), v9 -78%%; here %.1f -> %.1f ms (%+.0f%%; paired by sample "
	     "%+.0f%%)",
	     again, skip, (skip / again - 1) * 100, (paired - 1) * 100);
	note(SC,
	     "here the kernel's zero-fill (and, for memory the hypervisor had discarded, the host's) runs in "
	     "this thread's page faults in both reported rows, so skipping can save only zpage's own clear, "
	     "whatever the series' setup charged to its guest (here "
	     "%.1f ms of task-clock; 256 MiB takes %.1f ms at this run's non-temporal limit)",
	     again - skip, (double)((size_t)256 << 20) / calib.nt / 1e6);
}

void sc_seed(void)
{
	size_t n = (size_t)(15 * opt_scale + 0.5);
	char **p = xmalloc(seed_bytes() / BLK * sizeof(*p));
	struct seed_row x[NROWS];
	struct rotation rot;

	n = n < 3 ? 3 : n > 99 ? 99 : n;
	for (int k = 0; k < NROWS; k++)
		x[k] = (struct seed_row){k == S_KERNEL ? NULL : seed_arena(k), xmalloc(n * sizeof(double)),
					 xmalloc(n * sizeof(double)), 0, 0};
	rotation_init(&rot, SC, "sample", NROWS, n);
	for (size_t s = 0; s < n; s++) {
		const size_t *order = rotation_next(&rot);

		progress("seed: sample %zu/%zu", s + 1, n);
		for (int j = 0; j < NROWS; j++)
			seed_sample((int)order[j], &x[order[j]], p, s);
	}
	for (int k = 0; k < NROWS; k++) {
		result(SC, names[k], "task-clock", "ms", x[k].task, n);
		result(SC, names[k], "wall", "ms", x[k].wall, n);
	}
	reference(SC, names[S_AGAIN]);
	seed_notes(x, n);
	rotation_done(&rot);
	for (int k = 0; k < NROWS; k++) {
		if (x[k].a)
			arena_done(x[k].a, SC, names[k]);
		free(x[k].task);
		free(x[k].wall);
	}
	free(p);
}
