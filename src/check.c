/* SPDX-License-Identifier: MIT */
/*
 * check.c - the invariant checker and a dump of the free lists.
 *
 * zp_arena_check() takes every lock and proves, in this order:
 *  1. coverage: walking block heads by 2^order covers [0, nr_pages) exactly;
 *     each head has exactly one owner flag, an order <= max_order, is
 *     aligned to its order and fits; every other page has info == 0;
 *  2. zero state: a free block's recorded state equals zs_summary() of its
 *     pages; allocated pages have neither the zeroed nor the reported bit;
 *     no bit is set at or beyond nr_pages;
 *  3. buddy rule: no free buddy-list block has a free buddy-list buddy of
 *     the same order (they would have merged);
 *  4. lists: every list is a well-formed doubly linked list of heads with
 *     the owner, order and state of that list, and, per (order, state), the
 *     lists hold exactly the blocks found by the walk;
 *  5. counters: a->cnt and each cache's cnt equal zs_count() summed over
 *     their blocks; the nonempty hints match the buddy lists;
 *  6. isolation: a->isolated is a well-formed list of PG_busy heads whose
 *     pages add up to isolated_pages.
 * Blocks in flight (PG_busy) are legitimate while another thread allocates,
 * frees or isolates them; they are counted but not otherwise judged.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

static int fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("zpage: check: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return -EUCLEAN;
}

static bool zc_equal(const struct zcount *x, const struct zcount *y)
{
	return x->pages == y->pages && x->zeroed == y->zeroed && x->reported == y->reported && x->dirty == y->dirty;
}

/* Walk one list; add its blocks' counts to @sum.  Returns 0 or -EUCLEAN. */
static int check_list(struct zp_arena *a, const struct free_list *l, uint32_t owner, unsigned order, enum zstate st,
		      struct zcount *sum, const char *what)
{
	uint32_t prev = NIL;
	size_t n = 0;

	for (uint32_t pfn = l->head; pfn != NIL; prev = pfn, pfn = a->pages[pfn].next) {
		uint32_t info;
		struct zcount c;

		if (pfn >= a->nr_pages || ++n > a->nr_pages)
			return fail("%s list order %u state %d: bad link or cycle at %u", what, order, st, pfn);
		info = pg_info(&a->pages[pfn]);
		if ((info & PG_OWNER_MASK) != owner || pg_order(info) != order || pg_state(info) != st)
			return fail("%s list order %u state %d: block %u has info %#x", what, order, st, pfn, info);
		if (a->pages[pfn].prev != prev)
			return fail("%s list order %u state %d: block %u prev %u, expected %u", what, order, st, pfn,
				    a->pages[pfn].prev, prev);
		zs_count(a, pfn, (size_t)1 << order, &c);
		zcount_add(sum, &c);
	}
	if (l->tail != prev)
		return fail("%s list order %u state %d: tail %u, expected %u", what, order, st, l->tail, prev);
	if (n != l->nr)
		return fail("%s list order %u state %d: %zu blocks linked, count says %zu", what, order, st, n, l->nr);
	return 0;
}

/* 6: the blocks reporting and pre-zeroing passes hold. */
static int check_isolated(struct zp_arena *a)
{
	uint32_t prev = NIL;
	size_t n = 0, pages = 0;

	for (uint32_t pfn = a->isolated.head; pfn != NIL; prev = pfn, pfn = a->pages[pfn].next) {
		uint32_t info;

		if (pfn >= a->nr_pages || ++n > a->nr_pages)
			return fail("isolated list: bad link or cycle at %u", pfn);
		info = pg_info(&a->pages[pfn]);
		if ((info & PG_OWNER_MASK) != PG_BUSY)
			return fail("isolated block %u has info %#x", pfn, info);
		if (a->pages[pfn].prev != prev)
			return fail("isolated block %u prev %u, expected %u", pfn, a->pages[pfn].prev, prev);
		pages += (size_t)1 << pg_order(info);
	}
	if (a->isolated.tail != prev || n != a->isolated.nr)
		return fail("isolated list: tail %u / %zu blocks, expected %u / %zu", a->isolated.tail,
			    a->isolated.nr, prev, n);
	if (pages != a->isolated_pages)
		return fail("isolated list holds %zu pages, isolated_pages says %zu", pages, a->isolated_pages);
	return 0;
}

static int check_locked(struct zp_arena *a)
{
	size_t walked[2][NR_ORDERS][NR_ZSTATES]; /* [buddy, pcp] */
	size_t listed[2][NR_ORDERS][NR_ZSTATES];
	struct zcount sum_buddy = {0}, sum_pcp = {0}, lists = {0};
	size_t words = (a->nr_pages + 63) / 64;
	int ret;

	memset(walked, 0, sizeof(walked));
	memset(listed, 0, sizeof(listed));

	/* 1-3 */
	for (size_t pfn = 0; pfn < a->nr_pages;) {
		uint32_t info = pg_info(&a->pages[pfn]);
		uint32_t owner = info & PG_OWNER_MASK;
		unsigned o = pg_order(info);
		size_t n = (size_t)1 << o;
		struct zcount c;

		if (__builtin_popcount(owner) != 1)
			return fail("page %zu: expected a block head, info %#x", pfn, info);
		if (o > a->max_order || (pfn & (n - 1)) || pfn + n > a->nr_pages)
			return fail("block %zu: order %u misaligned or out of range", pfn, o);
		for (size_t i = 1; i < n; i++)
			if (pg_info(&a->pages[pfn + i]))
				return fail("block %zu order %u: page %zu has info %#x", pfn, o, pfn + i,
					    pg_info(&a->pages[pfn + i]));
		zs_count(a, pfn, n, &c);
		if (owner == PG_BUDDY || owner == PG_PCP) {
			int k = owner == PG_PCP;

			if (zs_summary(&c) != pg_state(info))
				return fail("free block %zu order %u: listed as state %d, pages say %d", pfn, o,
					    pg_state(info), zs_summary(&c));
			if (k && o > PCP_MAX_ORDER)
				return fail("cached block %zu has order %u", pfn, o);
			walked[k][o][pg_state(info)]++;
			zcount_add(k ? &sum_pcp : &sum_buddy, &c);
		}
		if (owner == PG_BUDDY && o < a->max_order) {
			size_t b = pfn ^ n;

			if (b + n <= a->nr_pages) {
				uint32_t bi = pg_info(&a->pages[b]);

				if ((bi & PG_OWNER_MASK) == PG_BUDDY && pg_order(bi) == o)
					return fail("buddies %zu and %zu of order %u are both free", pfn, b, o);
			}
		}
		if (owner == PG_ALLOC && (c.dirty != n || c.reported))
			return fail("allocated block %zu order %u has zeroed or reported pages", pfn, o);
		pfn += n;
	}
	if (a->nr_pages & 63) {
		uint64_t beyond = ~0ull << (a->nr_pages & 63);

		if ((atomic_load(&a->zero_bm[words - 1]) | atomic_load(&a->report_bm[words - 1])) & beyond)
			return fail("zero or report bits set beyond the last page");
	}

	/* 4 */
	for (unsigned o = 0; o <= a->max_order; o++) {
		for (int s = 0; s < NR_ZSTATES; s++) {
			const struct free_list *l = &a->free[o][s];
			bool hint = (atomic_load(&a->nonempty[s]) >> o) & 1;

			ret = check_list(a, l, PG_BUDDY, o, s, &lists, "buddy");
			if (ret)
				return ret;
			listed[0][o][s] = l->nr;
			if (hint != (l->nr != 0))
				return fail("nonempty hint for order %u state %d is %d", o, s, hint);
		}
	}
	if (!zc_equal(&lists, &sum_buddy) || !zc_equal(&a->cnt, &sum_buddy))
		return fail("buddy counters: %zu/%zu/%zu/%zu pages/zeroed/reported/dirty, blocks say %zu/%zu/%zu/%zu",
			    a->cnt.pages, a->cnt.zeroed, a->cnt.reported, a->cnt.dirty, sum_buddy.pages,
			    sum_buddy.zeroed, sum_buddy.reported, sum_buddy.dirty);
	lists = (struct zcount){0};
	for (unsigned i = 0; i < a->nr_pcp; i++) {
		struct zcount mine = {0};

		for (unsigned o = 0; o <= PCP_MAX_ORDER; o++) {
			for (int s = 0; s < NR_ZSTATES; s++) {
				ret = check_list(a, &a->pcp[i].lists[o][s], PG_PCP, o, s, &mine, "pcp");
				if (ret)
					return ret;
				listed[1][o][s] += a->pcp[i].lists[o][s].nr;
			}
		}
		if (!zc_equal(&mine, &a->pcp[i].cnt))
			return fail("cache %u counters: %zu pages, its blocks hold %zu", i, a->pcp[i].cnt.pages,
				    mine.pages);
		zcount_add(&lists, &mine);
	}
	if (!zc_equal(&lists, &sum_pcp))
		return fail("caches list %zu pages, the walk found %zu cached", lists.pages, sum_pcp.pages);
	for (int k = 0; k < 2; k++)
		for (unsigned o = 0; o <= a->max_order; o++)
			for (int s = 0; s < NR_ZSTATES; s++)
				if (listed[k][o][s] != walked[k][o][s])
					return fail("%s order %u state %d: %zu blocks listed, %zu found by the walk",
						    k ? "pcp" : "buddy", o, s, listed[k][o][s], walked[k][o][s]);
	return check_isolated(a);
}

int zp_arena_check(struct zp_arena *a)
{
	int ret, old;

	if (!a)
		return -EINVAL;
	/* fprintf() under every lock may be a cancellation point */
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
	lock_all(a);
	ret = check_locked(a);
	unlock_all(a);
	pthread_setcancelstate(old, NULL);
	return ret;
}

void zp_arena_dump(struct zp_arena *a, void *file)
{
	static const char *names[NR_ZSTATES] = {"zeroed", "dirty", "reported"};
	FILE *f = file;

	lock_all(a);
	fprintf(f, "zpage arena %p: %zu pages, %zu free on the buddy lists\n", (void *)a->base, a->nr_pages,
		a->cnt.pages);
	for (unsigned o = 0; o <= a->max_order; o++) {
		fprintf(f, "  order %2u:", o);
		for (int s = 0; s < NR_ZSTATES; s++)
			fprintf(f, " %s %zu", names[s], a->free[o][s].nr);
		fputc('\n', f);
	}
	unlock_all(a);
}
