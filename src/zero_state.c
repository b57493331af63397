/* SPDX-License-Identifier: MIT */
/*
 * zero_state.c - the per-page "zeroed" and "reported" state.
 *
 * Two bitmaps, one bit per pfn, stored inverted so that the state of fresh
 * memory (zeroed and reported: the OS zero-fills what was never touched)
 * is all-zero metadata, which costs nothing until it is written:
 *
 *   dirty_bm     1 = the page is not known to read as zero: a zeroing
 *                    request must clear it          ("zeroed" = bit clear)
 *   resident_bm  1 = the page has not been handed back to the OS since it
 *                    was last used                  ("reported" = bit clear)
 *
 * A page handed back to a backend that promises zero-fill is zeroed too; to
 * one that does not (MADV_FREE) its zero state is left as it was, since
 * such a backend either keeps the old contents or zero-fills.  Bits at or
 * beyond nr_pages are never set.
 *
 * Because the state is per page, not per block, splitting a block copies
 * nothing and merging a zeroed buddy with a dirty one loses nothing: the
 * merged block is simply "partly dirty" and a zeroing allocation of it
 * clears only the dirty pages.
 *
 * Invariants (proved by zp_arena_check()):
 *  - allocated pages are neither zeroed nor reported (both bits set: their
 *    content is the caller's);
 *  - a free block sits on the list of zs_summary() of its pages.
 *
 * Concurrency: a word holds the bits of 64 neighbouring pages, which may
 * belong to blocks owned by different threads, so every update is an atomic
 * read-modify-write.  A page's own bits change only while its block is owned
 * by the thread changing them (on a list under that list's lock, or in
 * flight), so relaxed ordering suffices; the locks order the rest.
 */
#include "internal.h"

#define for_each_word(pfn, n, w, m)                                                                                    \
	for (size_t _p = (pfn), _end = (pfn) + (n), _cnt, w;                                                           \
	     _p < _end && ((w = _p >> 6), (_cnt = 64 - (_p & 63)), (_cnt = _cnt < _end - _p ? _cnt : _end - _p),       \
			   (m = _cnt == 64 ? ~0ull : ((1ull << _cnt) - 1) << (_p & 63)), 1);                           \
	     _p += _cnt)

static inline uint64_t load(const _Atomic uint64_t *w)
{
	return atomic_load_explicit(w, memory_order_relaxed);
}

/* Blocks of up to 64 pages are aligned to their size, so they sit in one
 * word: the usual case of the allocation path, without the loop. */
static inline bool one_word(size_t pfn, size_t n)
{
	return n <= 64 && (pfn & 63) + n <= 64;
}

static inline uint64_t word_mask(size_t pfn, size_t n)
{
	return (n == 64 ? ~0ull : (1ull << n) - 1) << (pfn & 63);
}

/*
 * Counting costs a pass over the words; it runs on every allocation and
 * free, so it uses the CPU's popcnt instruction where there is one (an
 * ifunc picks the clone once; x86-64's baseline has no popcnt and the
 * library call it would make cost 40% of an order-0 alloc+free pair), and
 * three population counts a word instead of four: the categories
 * partition the pages.
 */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_THREAD__) &&             \
	!defined(__SANITIZE_ADDRESS__)
/* (not under the sanitizers: their runtime is not up when the ifunc is
 * resolved) */
#define POPCNT_CLONES __attribute__((target_clones("popcnt", "default")))
#else
#define POPCNT_CLONES
#endif

POPCNT_CLONES void zs_count(const struct zp_arena *a, size_t pfn, size_t n, struct zcount *c)
{
	size_t pd = 0, pr = 0, pdr = 0;
	uint64_t m;

	if (one_word(pfn, n)) {
		uint64_t d, res;

		m = word_mask(pfn, n);
		d = load(&a->dirty_bm[pfn >> 6]) & m;
		res = load(&a->resident_bm[pfn >> 6]) & m;
		pd = (size_t)__builtin_popcountll(d);
		pr = (size_t)__builtin_popcountll(res);
		pdr = (size_t)__builtin_popcountll(d & res);
		goto done;
	}
	for_each_word(pfn, n, w, m) {
		uint64_t d = load(&a->dirty_bm[w]) & m;
		uint64_t res = load(&a->resident_bm[w]) & m;

		pd += (size_t)__builtin_popcountll(d);
		pr += (size_t)__builtin_popcountll(res);
		pdr += (size_t)__builtin_popcountll(d & res);
	}
done:
	c->pages = n;
	c->dirty = pd;		/* not known zero */
	c->reported = n - pr;	/* not resident */
	c->zeroed = pr - pdr;	/* resident and zero */
	c->lazy = pd - pdr;	/* not resident and not zero */
}

/*
 * Which list a free block goes on.  "Reported" when every page was given
 * back, whether or not the OS promised zeros (MADV_FREE): touching it costs
 * a fault, so it is every request's last choice, and a zeroing request
 * still clears its pages not known zero.  Otherwise partly dirty counts as
 * dirty (a zeroing request must clear it), and a block with resident zero
 * pages and no dirty one is zeroed.
 */
enum zstate zs_summary(const struct zcount *c)
{
	if (c->reported == c->pages)
		return ZS_REPORTED;
	if (c->dirty)
		return ZS_DIRTY;
	return ZS_ZEROED;
}

/*
 * A word is shared by up to 64 pages that different threads may own, so an
 * update that would change nothing is skipped: a read keeps the cache line
 * shared, a read-modify-write would bounce it between CPUs on every
 * allocation (measured: 2 threads churning order-0 pages ran 4x slower).
 */
static void set_bits(_Atomic uint64_t *bm, size_t pfn, size_t n)
{
	uint64_t m;

	if (one_word(pfn, n)) {
		m = word_mask(pfn, n);
		if ((load(&bm[pfn >> 6]) & m) != m)
			atomic_fetch_or_explicit(&bm[pfn >> 6], m, memory_order_relaxed);
		return;
	}
	for_each_word(pfn, n, w, m)
		if ((load(&bm[w]) & m) != m)
			atomic_fetch_or_explicit(&bm[w], m, memory_order_relaxed);
}

static void clear_bits(_Atomic uint64_t *bm, size_t pfn, size_t n)
{
	uint64_t m;

	if (one_word(pfn, n)) {
		m = word_mask(pfn, n);
		if (load(&bm[pfn >> 6]) & m)
			atomic_fetch_and_explicit(&bm[pfn >> 6], ~m, memory_order_relaxed);
		return;
	}
	for_each_word(pfn, n, w, m)
		if (load(&bm[w]) & m)
			atomic_fetch_and_explicit(&bm[w], ~m, memory_order_relaxed);
}

void zs_mark_zeroed(struct zp_arena *a, size_t pfn, size_t n)
{
	clear_bits(a->dirty_bm, pfn, n);
}

void zs_mark_reported(struct zp_arena *a, size_t pfn, size_t n, bool zeroes)
{
	clear_bits(a->resident_bm, pfn, n);
	if (zeroes)
		clear_bits(a->dirty_bm, pfn, n);
}

void zs_clear(struct zp_arena *a, size_t pfn, size_t n)
{
	set_bits(a->dirty_bm, pfn, n);
	set_bits(a->resident_bm, pfn, n);
}

void zs_unzero(struct zp_arena *a, size_t pfn)
{
	set_bits(a->dirty_bm, pfn, 1);
}

bool zs_test_zero(const struct zp_arena *a, size_t pfn)
{
	return !((load(&a->dirty_bm[pfn >> 6]) >> (pfn & 63)) & 1);
}

bool zs_test_reported(const struct zp_arena *a, size_t pfn)
{
	return !((load(&a->resident_bm[pfn >> 6]) >> (pfn & 63)) & 1);
}

/* First page in [pfn, end) that is (@clearable) or is not (!@clearable)
 * dirty and resident: neither zeroed nor reported.  The pre-zero pass and
 * init_on_free clear exactly those pages. */
size_t zs_next_clearable(const struct zp_arena *a, size_t pfn, size_t end, bool clearable)
{
	uint64_t m;

	for_each_word(pfn, end - pfn, w, m) {
		uint64_t c = load(&a->dirty_bm[w]) & load(&a->resident_bm[w]);
		uint64_t hit = (clearable ? c : ~c) & m;

		if (hit)
			return (w << 6) + (size_t)__builtin_ctzll(hit);
	}
	return end;
}

/* First page in [pfn, end) whose zero state equals @zero, or end. */
size_t zs_next(const struct zp_arena *a, size_t pfn, size_t end, bool zero)
{
	uint64_t m;

	for_each_word(pfn, end - pfn, w, m) {
		uint64_t d = load(&a->dirty_bm[w]);
		uint64_t hit = (zero ? ~d : d) & m;

		if (hit)
			return (w << 6) + (size_t)__builtin_ctzll(hit);
	}
	return end;
}
