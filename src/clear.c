/* SPDX-License-Identifier: MIT */
/*
 * clear.c - the clearing engine: the code that zero-fills pages, but for
 * one inline clear (page_alloc.c: alloc_zeroed_hot(), the everyday zeroing
 * allocation of a hot cached block without an address, the same stores
 * clear_small_dirty_block() would pick, only while a->clear_inline (above
 * SMALL_CACHED_MAX: the cached primitive is rep stosb) or
 * a->clear_inline_small (at most SMALL_CACHED_MAX: the small primitive is
 * the 32-byte stores), and no test hook is set).
 *
 * Primitives, chosen once from CPUID (with a portable C fallback):
 *   cached:         rep stosb where ERMS/FSRM is advertised, else memset;
 *                   a hot block of at most SMALL_CACHED_MAX (4 KiB) with
 *                   AVX2 stores where AVX2 is advertised (the small one)
 *   non-temporal:   AVX-512 or AVX2 streaming stores, else SSE2 streaming
 *                   stores (x86-64 baseline), else memset; then sfence
 *
 * Order of a zeroing allocation of a block of n = 2^order pages whose
 * dirty pages are known from the zero bitmap (zero_state.c):
 *
 *   user_addr given, target page t = (user_addr >> 12) & (n - 1),
 *   neighbourhood W = [t - h, t + h] clipped to the block, where
 *   h = clear_hot_bytes / 2 pages (default 64 KiB: h = 8, 17 pages):
 *     1. dirty runs right of W, ascending  } far ranges: non-temporal when a
 *     2. dirty runs left of W, ascending   } run is >= nt_min_bytes, so they
 *                                            do not evict the caller's data
 *     3. dirty runs of W right of t, ascending, cached
 *     4. dirty runs of W from its left edge up to and including t,
 *        ascending, cached: the target page is the last page written, and
 *        when it is dirty it ends the same contiguous clear as its left
 *        neighbours (one clear fewer than clearing it on its own, which
 *        measured ~9% faster on 64 KiB blocks: each clear pays a start-up
 *        on cold memory)
 *
 *   example, n = 16, t = 9, h = 2, all dirty, clear_nt_min <= 64 KiB (with
 *   the default 256 KiB this small a block is all neighbourhood, below):
 *     pages  0 1 2 3 4 5 6 | 7 8 [9] | 10 11 | 12 13 14 15
 *     step   2 (one run)   | 4 (one run) | 3 | 1 (one run)
 *
 *   ZP_USER_ADDR_NONE: dirty runs ascending, each non-temporal when it is
 *   at least nt_min_bytes long, cached otherwise (small blocks stay hot).
 *
 *   Except: a dirty block of order 0 to 8 the allocating thread freed
 *   into its own cache is cleared with cached stores whatever its size,
 *   a single page with vector stores (clear_small_dirty_block(), @hot);
 *   without an address, every page dirty (PG_full), the same stores
 *   inline in page_alloc.c (alloc_zeroed_hot(): rep stosb while
 *   a->clear_inline, the single page's vector stores while
 *   a->clear_inline_small); a partly dirty one: its dirty runs, through
 *   clear_dirty_range();
 *   and a warm block (below) is cleared with cached stores only, as all
 *   neighbourhood: (t, n) then [0, t], or ascending without an address
 *   (clear_dirty_range(), @warm).
 *
 * Warmth: a block given back to the buddy lists less than DEFAULT_WARM_NS
 * (1 ms) ago, of at least nt_min_bytes and at most half the last-level
 * cache, is warm: its lines were probably written a moment ago and are
 * still in that cache, where a non-temporal clear would evict them just
 * before its caller writes them again (1 ms is about what one core takes
 * to write a 32 MiB L3 with cached stores; other cores can evict sooner,
 * and a wrong guess costs a cached clear of cold lines).  A block's stamp
 * (its head's info bits 16-31, in units of 2^WARM_SHIFT ns, wrapping every
 * 268 ms) is set by free_one_page() (buddy.c), which says when it is now
 * and when there is none; split halves keep it, a merge keeps the oldest
 * of the parts with pages to clear.  A stamp is a hint: a block free for a
 * multiple of 268 ms may look warm and is then cleared cached, never
 * wrongly.
 *
 * Why this order: non-temporal stores reach the write-bandwidth limit but
 * leave lines cold; cached stores (rep stosb) are ~2.5x slower per byte on
 * large ranges but leave the last ~L2-sized range hot.  Clearing all but the
 * neighbourhood with NT and the neighbourhood cached, target last, costs
 * little over a pure NT clear and leaves the bytes the caller touches first
 * in cache.  Defaults are from `zpage-bench clear` (README).
 *
 * Contiguous dirty pages are always cleared as one run (coalesced); known
 * zero pages are never written.
 *
 * The user path: when the caller gave a user_addr, every clear of the block
 * goes through clear_user_range(), which carries the user address of the
 * first page cleared.  In the test-only aliasing mode (a model of CPUs with
 * aliasing data caches, where a clear must be done through a mapping
 * congruent with the user address) that path clears page by page, each with
 * its own user address, and the test hook sees which path cleared each page.
 *
 * Invariants: each page is cleared at most once per call; every page whose
 * zero bit is clear on entry is cleared (for a free block, every resident
 * one: a reported page is never written); no page whose zero bit is set
 * is.
 */
#include <string.h>
#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif
#include <pthread.h>

#include "internal.h"

/* ---- primitives ---- */

static void zero_memset(void *p, size_t len)
{
	memset(p, 0, len);
}

static bool always(void)
{
	return true;
}

#if defined(__x86_64__)
static void zero_rep_stosb(void *p, size_t len)
{
	zero_stosb_inline(p, len);
}

static bool has_erms(void)
{
	unsigned eax, ebx, ecx, edx;

	if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx))
		return false;
	return (ebx & (1u << 9)) || (edx & (1u << 4)); /* ERMS or FSRM */
}

static bool has_avx2(void)
{
	return __builtin_cpu_supports("avx2");
}

static bool has_avx512(void)
{
	return __builtin_cpu_supports("avx512f");
}

/* Unaligned head and tail with memset, the 64-byte-aligned body with @body. */
#define NT_WRAPPER(name, body_fn)                                                                                      \
	static void name(void *p, size_t len)                                                                          \
	{                                                                                                              \
		char *c = p;                                                                                           \
		size_t head = (size_t)(-(uintptr_t)c & 63);                                                            \
		if (head > len)                                                                                        \
			head = len;                                                                                    \
		memset(c, 0, head);                                                                                    \
		c += head;                                                                                             \
		len -= head;                                                                                           \
		body_fn(c, len & ~(size_t)63);                                                                         \
		memset(c + (len & ~(size_t)63), 0, len & 63);                                                          \
		_mm_sfence();                                                                                          \
	}

__attribute__((target("sse2"))) static void nt_body_sse2(char *c, size_t len)
{
	__m128i z = _mm_setzero_si128();

	for (size_t i = 0; i < len; i += 64) {
		_mm_stream_si128((__m128i *)(c + i), z);
		_mm_stream_si128((__m128i *)(c + i + 16), z);
		_mm_stream_si128((__m128i *)(c + i + 32), z);
		_mm_stream_si128((__m128i *)(c + i + 48), z);
	}
}

__attribute__((target("avx2"))) static void nt_body_avx2(char *c, size_t len)
{
	__m256i z = _mm256_setzero_si256();

	for (size_t i = 0; i < len; i += 64) {
		_mm256_stream_si256((__m256i *)(c + i), z);
		_mm256_stream_si256((__m256i *)(c + i + 32), z);
	}
}

__attribute__((target("avx512f"))) static void nt_body_avx512(char *c, size_t len)
{
	__m512i z = _mm512_setzero_si512();

	for (size_t i = 0; i < len; i += 64)
		_mm512_stream_si512((void *)(c + i), z);
}

NT_WRAPPER(zero_nt_sse2, nt_body_sse2)
NT_WRAPPER(zero_nt_avx2, nt_body_avx2)
NT_WRAPPER(zero_nt_avx512, nt_body_avx512)

/* Cached 32-byte stores, 128 bytes a turn (zero_vec_inline()): for small
 * blocks whose lines are probably in cache, where rep stosb's start-up
 * shows (clear_small_dirty_block()). */
static void zero_vec_avx2(void *p, size_t len)
{
	char *c = p;
	size_t head = (size_t)(-(uintptr_t)c & 31), body;

	if (head > len)
		head = len;
	memset(c, 0, head);
	c += head;
	len -= head;
	body = len & ~(size_t)127;
	zero_vec_inline(c, body);
	if (len != body) /* never for pages: no call */
		memset(c + body, 0, len - body);
}
#endif

/* Every primitive, for tests and benchmarks; the preferred of each kind first. */
const struct zero_impl zero_impls[] = {
#if defined(__x86_64__)
	{"vec_avx2", zero_vec_avx2, false, has_avx2, true},
	{"rep_stosb", zero_rep_stosb, false, has_erms, false},
#endif
	{"memset", zero_memset, false, always, false},
#if defined(__x86_64__)
	{"nt_avx512", zero_nt_avx512, true, has_avx512, false},
	{"nt_avx2", zero_nt_avx2, true, has_avx2, false},
	{"nt_sse2", zero_nt_sse2, true, always, false},
#endif
	{"memset_nt_fallback", zero_memset, true, always, false},
};
const size_t nr_zero_impls = sizeof(zero_impls) / sizeof(zero_impls[0]);

static const struct zero_impl *cached_impl, *small_impl, *nt_impl;
static pthread_once_t impl_once = PTHREAD_ONCE_INIT;

static void choose_impls(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
	__builtin_cpu_init(); /* we may run before libgcc's constructor (the drop-in) */
#endif
	for (size_t i = 0; i < nr_zero_impls; i++) {
		const struct zero_impl *z = &zero_impls[i];

		if (!z->available())
			continue;
		if (z->nt && !nt_impl)
			nt_impl = z;
		if (!z->nt && z->small && !small_impl)
			small_impl = z;
		if (!z->nt && !z->small && !cached_impl)
			cached_impl = z;
	}
	if (!small_impl)
		small_impl = cached_impl;
}

/* a->clear_inline and clear_inline_small, as their comment says
 * (internal.h); again whenever a test hook changes. */
static void clear_inline_update(struct zp_arena *a)
{
#if defined(__x86_64__)
	bool stosb = cached_impl->fn == zero_rep_stosb, vec = small_impl->fn == zero_vec_avx2;
#else
	bool stosb = false, vec = false;
#endif
	bool unwatched = !a->clear_hook && !a->aliasing;

	a->clear_inline = stosb && unwatched;
	a->clear_inline_small = vec && unwatched;
}

#define DEFAULT_HOT_BYTES ((size_t)64 << 10)
#define DEFAULT_NT_MIN	  ((size_t)256 << 10)
#define WARM_SHIFT	  12 /* a stamp unit: 2^12 ns */
#define WARM_MAX_UNITS	  0x7fffu /* half the stamps' range: ages beyond it are ambiguous */
#define DEFAULT_WARM_NS	  ((uint64_t)1000000)
#define DEFAULT_LLC	  ((size_t)8 << 20) /* when the OS does not say */

void clear_init(struct zp_arena *a, size_t hot_bytes, size_t nt_min)
{
	size_t llc = os_llc_bytes(), warm_max;

	pthread_once(&impl_once, choose_impls);
	clear_inline_update(a);
	if (!hot_bytes)
		hot_bytes = DEFAULT_HOT_BYTES;
	a->hot_pages = (hot_bytes >> ZP_PAGE_SHIFT) / 2;
	a->nt_min_bytes = nt_min ? nt_min : DEFAULT_NT_MIN;
	warm_max = (llc ? llc : DEFAULT_LLC) / 2;
	a->warm_min_order = 0;
	while (a->warm_min_order < ZP_MAX_ORDER_LIMIT && (ZP_PAGE_SIZE << a->warm_min_order) < a->nt_min_bytes)
		a->warm_min_order++;
	a->warm_max_order = 0;
	while (a->warm_max_order < ZP_MAX_ORDER_LIMIT && (ZP_PAGE_SIZE << (a->warm_max_order + 1)) <= warm_max)
		a->warm_max_order++;
	a->warm_units = (unsigned)(DEFAULT_WARM_NS >> WARM_SHIFT);
	a->warm_last = 0;
}

/* ---- warmth ---- */

uint16_t warm_now(struct zp_arena *a)
{
	uint64_t ns = unlikely(a->warm_clock) ? a->warm_clock(a->warm_clock_ctx) : os_now_ns();
	uint16_t s = (uint16_t)(ns >> WARM_SHIFT);

	lock_assert_held(&a->lock);
	s += !s; /* 0 is "not warm" */
	a->warm_last = s;
	return s;
}

uint16_t warm_older(const struct zp_arena *a, uint16_t s, uint16_t t)
{
	if (!s || !t)
		return 0;
	return (uint16_t)(a->warm_last - s) >= (uint16_t)(a->warm_last - t) ? s : t;
}

bool warm_block(struct zp_arena *a, uint16_t stamp, unsigned order)
{
	if (!stamp || !a->warm_units || order < a->warm_min_order || order > a->warm_max_order)
		return false;
	return (uint16_t)(warm_now(a) - stamp) <= a->warm_units;
}

void zero_cached(void *p, size_t len)
{
	cached_impl->fn(p, len);
}

void zero_nt(void *p, size_t len)
{
	nt_impl->fn(p, len);
}

const char *zero_cached_name(void)
{
	pthread_once(&impl_once, choose_impls);
	return cached_impl->name;
}

const char *zero_small_name(void)
{
	pthread_once(&impl_once, choose_impls);
	return small_impl->name;
}

const char *zero_nt_name(void)
{
	pthread_once(&impl_once, choose_impls);
	return nt_impl->name;
}

/* ---- paths ---- */

/* Tell a test's hook of a clear by @impl (@hot: clear_small_dirty_block()'s). */
static void hook_by(struct zp_arena *a, size_t pfn, size_t n, bool user, uintptr_t uaddr, bool hot,
		    const struct zero_impl *impl)
{
	if (a->clear_hook) {
		struct clear_event ev = {pfn, n, impl->nt, user, uaddr, hot, impl->name};

		a->clear_hook(a->clear_hook_ctx, &ev);
	}
}

static void hook(struct zp_arena *a, size_t pfn, size_t n, bool nt, bool user, uintptr_t uaddr)
{
	hook_by(a, pfn, n, user, uaddr, false, nt ? nt_impl : cached_impl);
}

/* The general path's choice of stores: clear pages [pfn, pfn + n). */
static void zero_pages(struct zp_arena *a, size_t pfn, size_t n, bool nt)
{
	(nt ? zero_nt : zero_cached)(pfn_to_addr(a, pfn), n << ZP_PAGE_SHIFT);
}

/* Clear pages [pfn, pfn + n) through the arena's own mapping. */
static void clear_range(struct zp_arena *a, size_t pfn, size_t n, bool nt)
{
	zero_pages(a, pfn, n, nt);
	hook(a, pfn, n, nt, false, ZP_USER_ADDR_NONE);
}

/* Clear pages [pfn, pfn + n) for a user whose first page is at @uaddr. */
static void clear_user_range(struct zp_arena *a, size_t pfn, size_t n, bool nt, uintptr_t uaddr)
{
	if (!a->aliasing) {
		zero_pages(a, pfn, n, nt);
		hook(a, pfn, n, nt, true, uaddr);
		return;
	}
	/* aliasing data cache: one user-congruent clear per page */
	for (size_t i = 0; i < n; i++) {
		zero_pages(a, pfn + i, 1, nt);
		hook(a, pfn + i, 1, nt, true, uaddr + (i << ZP_PAGE_SHIFT));
	}
}

struct clear_ctx {
	struct zp_arena *a;
	size_t pfn;	 /* block head */
	uintptr_t ubase; /* user address of the head page, or ZP_USER_ADDR_NONE */
	size_t cleared;
	bool free_block; /* a free block: clear only resident dirty pages (never
			    write a page given back to the OS) and mark each run
			    zeroed once cleared */
};

static void do_clear(struct clear_ctx *x, size_t off, size_t n, bool nt)
{
	if (x->ubase != ZP_USER_ADDR_NONE)
		clear_user_range(x->a, x->pfn + off, n, nt, x->ubase + (off << ZP_PAGE_SHIFT));
	else
		clear_range(x->a, x->pfn + off, n, nt);
	if (x->free_block)
		zs_mark_zeroed(x->a, x->pfn + off, n);
	x->cleared += n;
}

/* The next page in [p, end) that does (@dirty) or does not need a clear. */
static size_t next_run_edge(const struct clear_ctx *x, size_t p, size_t end, bool dirty)
{
	return x->free_block ? zs_next_clearable(x->a, p, end, dirty) : zs_next(x->a, p, end, !dirty);
}

/* One bitmap scan: every page of the block needs a clear (the usual case). */
static bool block_all_dirty(const struct clear_ctx *x, size_t n)
{
	return next_run_edge(x, x->pfn, x->pfn + n, false) == x->pfn + n;
}

/* Which stores a run is cleared with. */
enum run_mode {
	RUN_CACHED,  /* the neighbourhood of a target */
	RUN_BY_SIZE, /* non-temporal when at least nt_min_bytes */
	RUN_NT,	     /* nobody reads it soon: init_on_free, pre-zeroing */
};

static void clear_run(struct clear_ctx *x, size_t off, size_t n, enum run_mode mode)
{
	bool nt = mode == RUN_NT || (mode == RUN_BY_SIZE && (n << ZP_PAGE_SHIFT) >= x->a->nt_min_bytes);

	do_clear(x, off, n, nt);
}

/* Clear the dirty runs of block offsets [lo, hi), ascending, coalesced.
 * @all_dirty: every page is dirty, skip the bitmap. */
static void clear_runs(struct clear_ctx *x, size_t lo, size_t hi, enum run_mode mode, bool all_dirty)
{
	size_t end = x->pfn + hi;

	if (all_dirty) {
		if (hi > lo)
			clear_run(x, lo, hi - lo, mode);
		return;
	}
	for (size_t p = x->pfn + lo; p < end;) {
		size_t s = next_run_edge(x, p, end, true);
		size_t e;

		if (s == end)
			break;
		e = next_run_edge(x, s, end, false);
		clear_run(x, s - x->pfn, e - s, mode);
		p = e;
	}
}

/*
 * Clear every dirty page of the block at @pfn, in the order described at the
 * top of this file.  Returns the number of pages cleared.  Does not change
 * the zero bits: the caller (post_alloc_hook) owns the block and resets them.
 */
size_t clear_dirty_pages(struct zp_arena *a, size_t pfn, unsigned order, uintptr_t user_addr)
{
	return clear_dirty_range(a, pfn, (size_t)1 << order, order, user_addr, false);
}

/*
 * The same for the first @n pages of a block of @order (an exact-size
 * allocation, n <= 2^order): the user address maps to a page of the block
 * as for the whole block, and to its last page when it falls beyond @n.
 * @warm: the block is warm or hot (the caller's guess that its lines are
 * in cache): every run cached, as for a block below nt_min_bytes.
 */
size_t clear_dirty_range(struct zp_arena *a, size_t pfn, size_t n, unsigned order, uintptr_t user_addr, bool warm)
{
	struct clear_ctx x = {a, pfn, ZP_USER_ADDR_NONE, 0, false};
	bool all_dirty = block_all_dirty(&x, n);
	enum run_mode far = warm ? RUN_CACHED : RUN_BY_SIZE;

	if (user_addr != ZP_USER_ADDR_NONE)
		x.ubase = user_addr & ~(uintptr_t)((ZP_PAGE_SIZE << order) - 1);
	if (user_addr == ZP_USER_ADDR_NONE || n == 1) {
		clear_runs(&x, 0, n, far, all_dirty);
		return x.cleared;
	}

	size_t t = (user_addr >> ZP_PAGE_SHIFT) & (((size_t)1 << order) - 1);

	if (t >= n)
		t = n - 1;
	size_t h = a->hot_pages;
	size_t wlo = t > h ? t - h : 0;
	size_t whi = t + h + 1 < n ? t + h + 1 : n;

	/* a block too small for any non-temporal run is all neighbourhood:
	 * two cached clears, (t, n) then [0, t], instead of up to four */
	if ((n << ZP_PAGE_SHIFT) < a->nt_min_bytes || warm) {
		wlo = 0;
		whi = n;
	}

	clear_runs(&x, whi, n, RUN_BY_SIZE, all_dirty);
	clear_runs(&x, 0, wlo, RUN_BY_SIZE, all_dirty);
	clear_runs(&x, t + 1, whi, RUN_CACHED, all_dirty);
	clear_runs(&x, wlo, t + 1, RUN_CACHED, all_dirty); /* ends with the target page */
	return x.cleared;
}

/*
 * The usual zeroing allocation from a thread's cache, in short: a whole
 * block every page of which is dirty and resident (the caller checked),
 * cleared with cached stores, [t + 1, n) then [0, t] (target last), or
 * [0, n) without an address: what clear_dirty_range() does for a block
 * smaller than nt_min_bytes, without the bitmap scans and the layers
 * between (they cost a small block's clear a quarter of its time).  @hot:
 * the block was freed into this thread's cache by this thread and comes
 * back from it, or a zeroing refill found it warm (orders 0 to
 * TC_MAX_ORDER, up to 1 MiB; not PG_COLD: get_page_from_freelist()), so it
 * was probably in use a moment ago; it is
 * cleared the same way whatever its size, where clear_dirty_range() would
 * use non-temporal stores from nt_min_bytes and leave cold the lines its
 * caller writes next (churn, which writes every page: 3% more operations a
 * second at one thread over 8+8 runs, p = 0.03, not significant after the
 * correction for the 10 rows), and a hot block of up to SMALL_CACHED_MAX
 * (one page) with the small primitive: vector stores, which on lines in
 * cache skip rep stosb's start-up (on the earlier host of DESIGN 6, a 4 KiB
 * zeroing allocation 212 -> 180 cycles in a standalone loop of churn's mix
 * timed with rdtsc, not in the repository) but on cold lines read each
 * line first (a cold 4 KiB clear and a read of it ~10% slower in
 * `zpage-bench clear`), so a block a refill brought gets rep stosb; so do
 * larger hot blocks, whose lines have often left L2 (internal.h).  A test's
 * clear hook sees each clear as the general path reports it, whether it
 * was hot, and the primitive.  False, having done
 * nothing, in the aliasing mode (page-by-page user clears) or when the
 * block is too large and not hot.
 */
bool clear_small_dirty_block(struct zp_arena *a, size_t pfn, unsigned order, uintptr_t user_addr, bool hot)
{
	size_t n = (size_t)1 << order;
	char *p = pfn_to_addr(a, pfn);
	/* the primitive, once for the block (both of its clears) */
	const struct zero_impl *z = hot && (n << ZP_PAGE_SHIFT) <= SMALL_CACHED_MAX ? small_impl : cached_impl;

	if ((!hot && (n << ZP_PAGE_SHIFT) >= a->nt_min_bytes) || a->aliasing)
		return false;
	if (user_addr == ZP_USER_ADDR_NONE) {
		z->fn(p, n << ZP_PAGE_SHIFT);
		hook_by(a, pfn, n, false, ZP_USER_ADDR_NONE, hot, z);
		return true;
	}

	uintptr_t ubase = user_addr & ~(uintptr_t)((ZP_PAGE_SIZE << order) - 1);
	size_t t = (user_addr >> ZP_PAGE_SHIFT) & (n - 1);

	if (t + 1 < n) {
		z->fn(p + ((t + 1) << ZP_PAGE_SHIFT), (n - t - 1) << ZP_PAGE_SHIFT);
		hook_by(a, pfn + t + 1, n - t - 1, true, ubase + ((t + 1) << ZP_PAGE_SHIFT), hot, z);
	}
	z->fn(p, (t + 1) << ZP_PAGE_SHIFT);
	hook_by(a, pfn, t + 1, true, ubase, hot, z);
	return true;
}

/*
 * Clear the resident dirty pages of a free block nobody is about to read
 * (init_on_free, pre-zeroing) with non-temporal stores, coalesced into runs,
 * and mark each run zeroed once it is cleared.  Pages given back to the OS
 * are left alone even when they are not known zero (MADV_FREE): writing
 * them would take them back from the OS.  The caller owns the block (in
 * flight or isolated).  Returns the pages cleared.
 */
size_t clear_dirty_free_block(struct zp_arena *a, size_t pfn, unsigned order)
{
	return clear_dirty_free_range(a, pfn, (size_t)1 << order);
}

size_t clear_dirty_free_range(struct zp_arena *a, size_t pfn, size_t n)
{
	struct clear_ctx x = {a, pfn, ZP_USER_ADDR_NONE, 0, true};

	clear_runs(&x, 0, n, RUN_NT, block_all_dirty(&x, n));
	return x.cleared;
}

void zp_test_set_clear_hook(struct zp_arena *a, clear_hook_fn fn, void *ctx)
{
	a->clear_hook = fn;
	a->clear_hook_ctx = ctx;
	clear_inline_update(a);
}

uint64_t zp_test_inline_clears(struct zp_arena *a)
{
#ifdef ZPAGE_DEBUG_COUNTS
	return atomic_load_explicit(&a->dbg_inline_clears, memory_order_relaxed);
#else
	(void)a;
	return UINT64_MAX;
#endif
}

void zp_test_set_aliasing(struct zp_arena *a, bool on)
{
	a->aliasing = on;
	clear_inline_update(a);
}

void zp_test_set_warm_ns(struct zp_arena *a, uint64_t ns)
{
	uint64_t u = ns >> WARM_SHIFT; /* as clear_init() rounds */

	zlock_lock(&a->lock);
	a->warm_units = (unsigned)(u > WARM_MAX_UNITS ? WARM_MAX_UNITS : u);
	zlock_unlock(&a->lock);
}

void zp_test_set_warm_clock(struct zp_arena *a, uint64_t (*now_ns)(void *ctx), void *ctx)
{
	zlock_lock(&a->lock);
	a->warm_clock = now_ns;
	a->warm_clock_ctx = ctx;
	zlock_unlock(&a->lock);
}
