/* SPDX-License-Identifier: MIT */
/*
 * zpage-bench utilities: the clocks, percentiles, a random generator, the
 * read of a block's neighbourhood, writing every page of a range, mapping
 * memory with huge pages, the resident set, messages, and allocation that
 * dies loudly instead of returning NULL.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

bool progress_on;

double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

double thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;

	return a < b ? -1 : a > b;
}

void sort_doubles(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
}

double pct(const double *v, size_t n, double p)
{
	double *c, r;

	if (!n)
		return 0;
	c = xmemdup(v, n * sizeof(*c));
	sort_doubles(c, n);
	r = c[(size_t)((n - 1) * p / 100.0 + 0.5)];
	free(c);
	return r;
}

double median(const double *v, size_t n)
{
	double *c, r;

	if (!n)
		return 0;
	c = xmemdup(v, n * sizeof(*c));
	sort_doubles(c, n);
	r = n % 2 ? c[n / 2] : (c[n / 2 - 1] + c[n / 2]) / 2;
	free(c);
	return r;
}

uint64_t rnd64(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

double read_window(const char *blk, size_t bytes, size_t t)
{
	size_t c = (t << ZP_PAGE_SHIFT) + ZP_PAGE_SIZE / 2;
	size_t lo = c > (32u << 10) ? c - (32u << 10) : 0, hi = lo + (64u << 10);
	volatile uint64_t sink;
	uint64_t acc = 0;
	double t0;

	if (hi > bytes) {
		hi = bytes;
		lo = bytes > (64u << 10) ? bytes - (64u << 10) : 0;
	}
	t0 = now_ns();
	for (size_t i = lo; i < hi; i += 64)
		acc += *(const volatile uint64_t *)(blk + i);
	sink = acc;
	(void)sink;
	return now_ns() - t0;
}

void touch_pages(char *p, size_t bytes)
{
	for (size_t off = 64; off < bytes; off += ZP_PAGE_SIZE)
		((volatile char *)p)[off] = 1;
}

char *map_thp(size_t len)
{
	const size_t huge = (size_t)2 << 20;
	char *m = mmap(NULL, len + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	char *a;

	if (m == MAP_FAILED)
		die("mmap of %zu MiB failed: %s", len >> 20, strerror(errno));
	a = (char *)(((uintptr_t)m + huge - 1) & ~(uintptr_t)(huge - 1));
	if (a > m)
		munmap(m, (size_t)(a - m));
	if (m + huge > a)
		munmap(a + len, (size_t)(m + huge - a));
	madvise(a, len, MADV_HUGEPAGE);
	return a;
}

/* VmRSS, from /proc/self/statm: its second field is the same count in pages */
long rss_kib(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long size, resident = 0;

	if (f && fscanf(f, "%ld %ld", &size, &resident) != 2)
		resident = 0;
	if (f)
		fclose(f);
	return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

void progress(const char *fmt, ...)
{
	va_list ap;

	if (!progress_on)
		return;
	va_start(ap, fmt);
	fputs("\r\033[K", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("zpage-bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		die("out of memory");
	return p;
}

void *xmemdup(const void *p, size_t n)
{
	void *q = xmalloc(n);

	if (n)
		memcpy(q, p, n);
	return q;
}

char *xstrdup(const char *s)
{
	return xmemdup(s, strlen(s) + 1);
}

char *xvasprintf(const char *fmt, va_list ap)
{
	char *s;

	if (vasprintf(&s, fmt, ap) < 0)
		die("out of memory");
	return s;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	s = xvasprintf(fmt, ap);
	va_end(ap);
	return s;
}

void *grow_array(void *p, size_t *cap, size_t need, size_t size)
{
	size_t n = *cap ? *cap : 16;

	if (need <= *cap)
		return p;
	while (n < need)
		n *= 2;
	if (n > SIZE_MAX / size || !(p = realloc(p, n * size)))
		die("out of memory");
	*cap = n;
	return p;
}

struct zp_arena *arena_or_die(const struct zp_config *cfg)
{
	struct zp_arena *a = zp_arena_create(cfg);

	if (!a)
		die("zp_arena_create: %s", strerror(errno));
	return a;
}

void dirty_blocks(struct zp_arena *a, char **p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		p[i] = zp_alloc_pages(a, 0, 9, ZP_USER_ADDR_NONE);
		if (!p[i])
			die("an order-9 allocation failed (%zu of %zu)", i + 1, n);
		memset(p[i], 0x5a, (size_t)2 << 20);
	}
	for (size_t i = 0; i < n; i++)
		zp_free_pages(a, p[i], 9);
}

/* --dump: the state of the first arena of each scenario's row, as it ends. */
void arena_done(struct zp_arena *a, const char *sc, const char *row)
{
	static char **seen;
	static size_t nseen, cap;

	if (opt_dump) {
		char *what = xasprintf("%s: %s", sc, row);
		size_t i = 0;

		while (i < nseen && strcmp(seen[i], what))
			i++;
		if (i == nseen) {
			GROW(seen, cap, nseen + 1);
			seen[nseen++] = what;
			printf("-- zp_arena_dump at the end of %s\n", what);
			zp_arena_dump(a, stdout);
			fflush(stdout);
		} else {
			free(what);
		}
	}
	zp_arena_destroy(a);
}
