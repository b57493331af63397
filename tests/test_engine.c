/* SPDX-License-Identifier: MIT */
/*
 * The clearing engine: the order of clears, and every primitive against
 * memset.
 *
 * Order: a hook records each clear as (page, length, cached or
 * non-temporal).  For every order 0..10, many targets (edges included) and
 * dirty patterns (all dirty, random, alternating, one dirty page), assert:
 *   - every dirty page is cleared exactly once, no zero page ever;
 *   - every clear is a maximal dirty run within its phase (coalesced);
 *   - with a user_addr: far runs (outside the neighbourhood) come first and
 *     are non-temporal iff at least nt_min bytes; then the neighbourhood,
 *     cached: its part right of the target, then its part left of the
 *     target together with the target, which is the last page cleared;
 *   - without: runs ascending, non-temporal iff at least nt_min bytes.
 *
 *   example (n = 16, target 9, neighbourhood +-2):
 *     pages   0 ........ 6 | 7 8 9 | 10 11 | 12 ... 15
 *     phase   0 (far)        2       1       0 (far)
 *     order   far runs first, then phase 1, then phase 2 ending at 9
 */
#include "test.h"

#define MAXN 1024

struct ev {
	size_t off, n;
	bool nt;
};

struct log {
	size_t head;
	struct ev ev[MAXN + 8];
	size_t nev;
};

static void hook(void *ctx, const struct clear_event *e)
{
	struct log *l = ctx;

	if (l->nev < MAXN + 8)
		l->ev[l->nev++] = (struct ev){e->pfn - l->head, e->nr_pages, e->nt};
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

enum pattern { ALL_DIRTY, RANDOM, ALTERNATE, ONE_DIRTY, NR_PATTERNS };

static bool dirty_at(enum pattern p, size_t i, size_t n, uint64_t salt)
{
	switch (p) {
	case ALL_DIRTY:
		return true;
	case RANDOM:
		return ((salt >> (i % 61)) ^ (i * 0x9e37)) & 1;
	case ALTERNATE:
		return i & 1;
	case ONE_DIRTY:
		return i == (size_t)(salt % n);
	default:
		return true;
	}
}

/* phase of page i: 0 = far, 1 = near right of the target, 2 = near left
 * of it and the target itself; a block smaller than nt_min is all near */
static size_t block_pages;
static size_t nt_min_pages;
static int phase_of(size_t i, size_t t, size_t h, bool ua)
{
	bool small = block_pages < nt_min_pages;

	if (!ua || (!small && (i + h < t || i > t + h)))
		return 0;
	return i > t ? 1 : 2;
}

static void check_order(struct zp_arena *a, struct log *lg, char *blk, unsigned order, size_t t, bool ua,
			enum pattern pat, uint64_t salt)
{
	size_t n = (size_t)1 << order, head = t_pfn(a, blk), h = a->hot_pages;
	bool dirty[MAXN];
	unsigned seen[MAXN] = {0};

	block_pages = n;
	nt_min_pages = a->nt_min_bytes >> ZP_PAGE_SHIFT;
	int last_phase = 0;
	size_t last_page = SIZE_MAX;

	for (size_t i = 0; i < n; i++) {
		dirty[i] = dirty_at(pat, i, n, salt);
		if (!dirty[i])
			zs_mark_zeroed(a, head + i, 1);
		memset(blk + (i << ZP_PAGE_SHIFT), dirty[i] ? 0x6b : 0, ZP_PAGE_SIZE);
	}
	lg->head = head;
	lg->nev = 0;
	size_t cleared = clear_dirty_pages(a, head, order, ua ? 0x10000000 + (t << ZP_PAGE_SHIFT) : ZP_USER_ADDR_NONE);
	zs_clear(a, head, n); /* the block is still allocated: drop the test's marks */

	size_t expect = 0;
	for (size_t i = 0; i < n; i++)
		expect += dirty[i];
	EXPECT_EQ(cleared, expect);
	for (size_t k = 0; k < lg->nev; k++) {
		struct ev e = lg->ev[k];
		int ph = phase_of(e.off, t, h, ua);

		if (e.off + e.n > n) {
			T_REPORT("order %u: clear beyond the block", order);
			return;
		}
		for (size_t i = e.off; i < e.off + e.n; i++) {
			seen[i]++;
			if (phase_of(i, t, h, ua) != ph)
				T_REPORT("order %u t %zu: clear [%zu,+%zu) crosses phases", order, t, e.off, e.n);
		}
		/* maximal run: the pages just outside it are clean or in another
		 * phase */
		if (e.off > 0 && dirty[e.off - 1] && phase_of(e.off - 1, t, h, ua) == ph)
			T_REPORT("order %u t %zu: run at %zu not coalesced with the page before", order, t, e.off);
		if (e.off + e.n < n && dirty[e.off + e.n] && phase_of(e.off + e.n, t, h, ua) == ph)
			T_REPORT("order %u t %zu: run at %zu not coalesced with the page after", order, t, e.off);
		if (ph < last_phase)
			T_REPORT("order %u t %zu: phase %d after phase %d", order, t, ph, last_phase);
		last_phase = ph;
		if (ph == 0 && e.nt != ((e.n << ZP_PAGE_SHIFT) >= a->nt_min_bytes))
			T_REPORT("order %u t %zu: far run of %zu pages nt=%d", order, t, e.n, e.nt);
		if (ph != 0 && e.nt)
			T_REPORT("order %u t %zu: neighbourhood cleared non-temporally", order, t);
		last_page = e.off + e.n - 1;
	}
	for (size_t i = 0; i < n; i++) {
		if (seen[i] != dirty[i]) {
			T_REPORT("order %u t %zu pattern %d: page %zu cleared %u times, dirty %d", order, t, pat, i,
				 seen[i], dirty[i]);
			return;
		}
	}
	if (ua && dirty[t])
		EXPECT_EQ(last_page, t);
	EXPECT(t_all_zero(blk, n << ZP_PAGE_SHIFT));
}

static void clear_order(void)
{
	/* a small nt_min so that far runs of several sizes cross it */
	struct zp_config c = {.size = 2 * MAXN * ZP_PAGE_SIZE,
			      .max_order = 10,
			      .clear_nt_min = 16 * ZP_PAGE_SIZE,
			      .clear_hot_bytes = 8 * ZP_PAGE_SIZE};
	struct zp_arena *a = zp_arena_create(&c);
	struct log *lg = calloc(1, sizeof(*lg));

	ASSERT(a && lg);
	EXPECT_EQ(a->hot_pages, 4);
	zp_test_set_clear_hook(a, hook, lg);
	for (unsigned order = 0; order <= 10; order++) {
		size_t n = (size_t)1 << order;
		char *blk = zp_alloc_pages(a, 0, order, ZP_USER_ADDR_NONE);

		ASSERT(blk);
		for (int pat = 0; pat < NR_PATTERNS; pat++) {
			size_t targets[] = {
				0, n - 1, n / 2, 1 % n, (n - 2) % n, (size_t)(rnd() % n), (size_t)(rnd() % n)};

			for (size_t k = 0; k < sizeof(targets) / sizeof(targets[0]); k++) {
				uint64_t salt = rnd();

				check_order(a, lg, blk, order, targets[k], true, pat, salt);
				check_order(a, lg, blk, order, targets[k], false, pat, salt);
			}
		}
		ASSERT_EQ(zp_free_pages(a, blk, order), 0);
	}
	EXPECT_EQ(zp_arena_check(a), 0);
	free(lg);
	zp_arena_destroy(a);
}

/* Each primitive against memset on random offsets and lengths, with guard
 * bytes around the range that must stay untouched. */
static void primitives_match_memset(void)
{
	size_t cap = 1 << 20;
	unsigned char *buf = malloc(cap + 256), *ref = malloc(cap + 256);
	int tested = 0;

	ASSERT(buf && ref);
	for (size_t i = 0; i < nr_zero_impls; i++) {
		const struct zero_impl *z = &zero_impls[i];

		if (!z->available()) {
			T_NOTE("skip primitive %s: this CPU lacks it", z->name);
			continue;
		}
		tested++;
		for (int round = 0; round < 300; round++) {
			size_t off = rnd() % 200, len = round < 100 ? rnd() % 300 : rnd() % (cap - 256);

			for (size_t j = 0; j < cap + 256; j++)
				buf[j] = ref[j] = (unsigned char)(j * 7 + round);
			z->fn(buf + off, len);
			memset(ref + off, 0, len);
			if (memcmp(buf, ref, cap + 256)) {
				T_REPORT("%s: off %zu len %zu differs from memset", z->name, off, len);
				break;
			}
		}
	}
	EXPECT(tested >= 2); /* at least one cached and one non-temporal */
	T_NOTE("primitives tested: %d of %zu; chosen: cached %s (up to %zu KiB: %s), non-temporal %s", tested,
	       nr_zero_impls, zero_cached_name(), SMALL_CACHED_MAX >> 10, zero_small_name(), zero_nt_name());
	free(buf);
	free(ref);
}

/* Configured thresholds reach the engine; defaults are 64 KiB / 256 KiB. */
static void thresholds_configurable(void)
{
	struct zp_arena *a = t_arena(64, 6, 0);

	EXPECT_EQ(a->hot_pages, 8);
	EXPECT_EQ(a->nt_min_bytes, 256 << 10);
	zp_arena_destroy(a);
}

int main(int argc, char **argv)
{
	t_init(argc, argv);
	RUN(clear_order);
	RUN(primitives_match_memset);
	RUN(thresholds_configurable);
	return t_done("test_engine");
}
