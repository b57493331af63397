/* SPDX-License-Identifier: MIT */
/*
 * The allocators zpage is compared with, loaded at run time so that a
 * missing one is reported and the rest run.  Each gives a zero-filled and a
 * plain page-aligned allocation and a release; zero-filled goes through
 * the allocator's own calloc-like path so its zeroing shortcuts count.
 *   glibc     calloc / malloc (linked; always there)
 *   jemalloc  mallocx(MALLOCX_ZERO | MALLOCX_ALIGN(4096)) / dallocx: its
 *             own API, so no symbol can resolve to glibc's malloc
 *   mimalloc  mi_zalloc_aligned / mi_malloc_aligned / mi_free
 *   tcmalloc  tc_calloc / tc_memalign / tc_free
 * Page alignment only: zpage's blocks are aligned to their size, which the
 * peers are not asked for.
 */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define MALLOCX_ZERO	 0x40
#define MALLOCX_ALIGN_4K 12 /* MALLOCX_LG_ALIGN(12) */

static void *(*je_mallocx)(size_t, int);
static void (*je_dallocx)(void *, int);
static void *(*mi_zalloc_aligned)(size_t, size_t);
static void *(*mi_malloc_aligned)(size_t, size_t);
static void (*mi_free)(void *);
static void *(*tc_calloc)(size_t, size_t);
static void *(*tc_memalign)(size_t, size_t);
static void (*tc_free)(void *);

static void *glibc_zalloc(size_t n)
{
	return calloc(1, n); /* >= 4 KiB requests here are page multiples */
}
static void *glibc_alloc(size_t n)
{
	return aligned_alloc(4096, n);
}
static void glibc_release(void *p, size_t n)
{
	(void)n;
	free(p);
}
static void *je_zalloc(size_t n)
{
	return je_mallocx(n, MALLOCX_ZERO | MALLOCX_ALIGN_4K);
}
static void *je_alloc(size_t n)
{
	return je_mallocx(n, MALLOCX_ALIGN_4K);
}
static void je_release(void *p, size_t n)
{
	(void)n;
	je_dallocx(p, 0);
}
static void *mi_zalloc(size_t n)
{
	return mi_zalloc_aligned(n, 4096);
}
static void *mi_alloc(size_t n)
{
	return mi_malloc_aligned(n, 4096);
}
static void mi_release(void *p, size_t n)
{
	(void)n;
	mi_free(p);
}
static void *tc_zalloc(size_t n)
{
	return tc_calloc(1, n);
}
static void *tc_alloc(size_t n)
{
	return tc_memalign(4096, n);
}
static void tc_release(void *p, size_t n)
{
	(void)n;
	tc_free(p);
}

struct peer peers[NR_PEERS] = {
	[PEER_GLIBC] = {"glibc", true, NULL, glibc_zalloc, glibc_alloc, glibc_release},
	[PEER_JEMALLOC] = {"jemalloc", false, "libjemalloc.so.2", je_zalloc, je_alloc, je_release},
	[PEER_MIMALLOC] = {"mimalloc", false, "libmimalloc.so.2", mi_zalloc, mi_alloc, mi_release},
	[PEER_TCMALLOC] = {"tcmalloc", false, "libtcmalloc.so.4", tc_zalloc, tc_alloc, tc_release},
};

static void *sym(void *h, const char *name, bool *ok)
{
	void *p = h ? dlsym(h, name) : NULL;

	*ok &= p != NULL;
	return p;
}

void peers_load(void)
{
	void *h;
	bool ok;

	/* tcmalloc first: its initializer (C++) breaks when jemalloc is
	 * already loaded (seen here: free(): invalid pointer in
	 * MallocExtension::Initialize) */
	h = dlopen("libtcmalloc.so.4", RTLD_NOW | RTLD_LOCAL);
	ok = h != NULL;
	*(void **)&tc_calloc = sym(h, "tc_calloc", &ok);
	*(void **)&tc_memalign = sym(h, "tc_memalign", &ok);
	*(void **)&tc_free = sym(h, "tc_free", &ok);
	peers[PEER_TCMALLOC].available = ok;

	h = dlopen("libjemalloc.so.2", RTLD_NOW | RTLD_LOCAL);
	ok = h != NULL;
	*(void **)&je_mallocx = sym(h, "mallocx", &ok);
	*(void **)&je_dallocx = sym(h, "dallocx", &ok);
	peers[PEER_JEMALLOC].available = ok;

	h = dlopen("libmimalloc.so.2", RTLD_NOW | RTLD_LOCAL);
	ok = h != NULL;
	*(void **)&mi_zalloc_aligned = sym(h, "mi_zalloc_aligned", &ok);
	*(void **)&mi_malloc_aligned = sym(h, "mi_malloc_aligned", &ok);
	*(void **)&mi_free = sym(h, "mi_free", &ok);
	peers[PEER_MIMALLOC].available = ok;
}
