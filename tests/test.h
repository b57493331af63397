/* SPDX-License-Identifier: MIT */
/*
 * A minimal test harness that speaks TAP (version 13).
 *
 * Each test binary prints on stdout
 *	TAP version 13
 *	ok 1 - name
 *	not ok 2 - name
 *	ok 3 - name # SKIP reason
 *	# a diagnostic line
 *	1..3
 * and exits non-zero when a test failed.  The plan comes last: a binary
 * that dies half-way has none, which `prove` and tests/run.sh count as a
 * failure.  Every other line on stdout starts with "# ".
 *
 * Command line: `test_x [NAME...]` runs only the tests whose name contains
 * one of the NAMEs (a plain, case-sensitive substring: `test_report
 * prezero` runs every test with "prezero" in its name, `test_report
 * prezero_pass` just that one).  Numbering follows the tests run.  No
 * match is an error (exit 2) that lists the names.  With ZPAGE_TEST_SEED
 * (test_stress) this replays a failure of one test.
 *
 * In a test (a `static void fn(void)` given to RUN(fn)):
 *   EXPECT(c), EXPECT_EQ/NE/LT/LE/GT/GE(x, y): record a failure, go on;
 *   ASSERT(c), ASSERT_EQ/NE/LT/LE/GT/GE(x, y): record it, leave the test;
 *   SKIP("reason %d", ...): leave the test, reported as skipped;
 *   T_REPORT(fmt, ...): record a failure with a message of one's own;
 *   T_DIAG(fmt, ...): a "# " line on stderr (failure details, notes
 *	about expected library messages: `prove` shows stderr);
 *   T_NOTE(fmt, ...): a "# " line on stdout (informational figures;
 *	`prove -v` shows them).
 *
 * The typed comparisons evaluate each operand once and compare them as
 * numbers, whatever their types: -1 is less than any unsigned value and
 * never equals SIZE_MAX, a uint64_t above LLONG_MAX is itself, a pointer
 * compares by address.  On failure both values are printed with their C
 * type, chosen with _Generic:
 *	expected s.nr_free == 16: got 15 (unsigned long) and 16 (int)
 * (size_t, uint64_t and uintptr_t are all unsigned long on LP64 Linux, so
 * that is the name they get).  Integers of every width, char, bool,
 * floating types and pointers are accepted; cast a bit-field first.
 */
#ifndef ZPAGE_TEST_H
#define ZPAGE_TEST_H

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>

#include "internal.h"
#include "zpage.h"

static int t_passed, t_failed, t_skipped, t_cur_failed, t_cur_skipped, t_num;
static const char *t_cur;
static char t_skip_reason[512];
static char **t_filters;
static int t_nfilters;
static const char *t_seen[256]; /* every name given to RUN(), for a filter that matches none */
static int t_nseen;

/* ---- diagnostics ---- */

/* One "# head message" line (a line per line of the message) in a single
 * write, so that lines from other threads or from stderr do not cut it. */
__attribute__((format(printf, 3, 0))) static inline void t_vemit(FILE *f, const char *head, const char *fmt, va_list ap)
{
	char msg[4096], out[8192];
	size_t o = 0;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	o += (size_t)snprintf(out, sizeof(out), "# %s", head);
	for (const char *p = msg; *p && o < sizeof(out) - 4; p++) {
		out[o++] = *p;
		if (*p == '\n' && p[1]) {
			out[o++] = '#';
			out[o++] = ' ';
		}
	}
	if (o && out[o - 1] != '\n')
		out[o++] = '\n';
	fwrite(out, 1, o, f);
	fflush(f);
}

__attribute__((format(printf, 1, 2))) static inline void t_note(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	t_vemit(stdout, "", fmt, ap);
	va_end(ap);
}

__attribute__((format(printf, 1, 2))) static inline void t_diag(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	t_vemit(stderr, "", fmt, ap);
	va_end(ap);
}

/* A failure of the current test, on stderr: "# file:line: test: message". */
__attribute__((format(printf, 3, 4))) static inline void t_report(const char *file, int line, const char *fmt, ...)
{
	char head[256];
	va_list ap;

	snprintf(head, sizeof(head), "%s:%d: %s: ", file, line, t_cur ? t_cur : "(no test)");
	va_start(ap, fmt);
	t_vemit(stderr, head, fmt, ap);
	va_end(ap);
	t_cur_failed++;
}

#define T_NOTE(...)   t_note(__VA_ARGS__)
#define T_DIAG(...)   t_diag(__VA_ARGS__)
#define T_REPORT(...) t_report(__FILE__, __LINE__, __VA_ARGS__)

#define EXPECT(c)                                                                                                      \
	do {                                                                                                           \
		if (!(c))                                                                                              \
			T_REPORT("expected %s", #c);                                                                   \
	} while (0)
#define ASSERT(c)                                                                                                      \
	do {                                                                                                           \
		if (!(c)) {                                                                                            \
			T_REPORT("assert %s", #c);                                                                     \
			return;                                                                                        \
		}                                                                                                      \
	} while (0)

/* ---- typed comparisons ---- */

enum t_kind { T_SIGNED, T_UNSIGNED, T_BOOL, T_CHAR, T_FLOAT, T_PTR };

/* An operand: its value, exactly, and the name of its C type. */
struct t_val {
	enum t_kind kind;
	const char *type;
	int digits;    /* T_FLOAT: significant digits that identify the value */
	long double f; /* T_FLOAT (outside the union: GCC notes an ABI change for a union with it) */
	union {
		long long i;		/* T_SIGNED, T_CHAR when char is signed */
		unsigned long long u;	/* T_UNSIGNED, T_BOOL, T_CHAR when char is unsigned */
		const volatile void *p; /* T_PTR */
	} v;
};

#define T_VAL_SIGNED(fn, T, name)                                                                                      \
	static inline struct t_val fn(T x)                                                                             \
	{                                                                                                              \
		struct t_val r = {T_SIGNED, name, 0, 0, {.i = x}};                                                     \
		return r;                                                                                              \
	}
#define T_VAL_UNSIGNED(fn, T, name)                                                                                    \
	static inline struct t_val fn(T x)                                                                             \
	{                                                                                                              \
		struct t_val r = {T_UNSIGNED, name, 0, 0, {.u = x}};                                                   \
		return r;                                                                                              \
	}
#define T_VAL_FLOAT(fn, T, name, dig)                                                                                  \
	static inline struct t_val fn(T x)                                                                             \
	{                                                                                                              \
		struct t_val r = {T_FLOAT, name, dig, x, {.u = 0}};                                                    \
		return r;                                                                                              \
	}
T_VAL_SIGNED(t_val_schar, signed char, "signed char")
T_VAL_SIGNED(t_val_short, short, "short")
T_VAL_SIGNED(t_val_int, int, "int")
T_VAL_SIGNED(t_val_long, long, "long")
T_VAL_SIGNED(t_val_llong, long long, "long long")
T_VAL_UNSIGNED(t_val_uchar, unsigned char, "unsigned char")
T_VAL_UNSIGNED(t_val_ushort, unsigned short, "unsigned short")
T_VAL_UNSIGNED(t_val_uint, unsigned, "unsigned int")
T_VAL_UNSIGNED(t_val_ulong, unsigned long, "unsigned long")
T_VAL_UNSIGNED(t_val_ullong, unsigned long long, "unsigned long long")
T_VAL_FLOAT(t_val_float, float, "float", 9)
T_VAL_FLOAT(t_val_double, double, "double", 17)
T_VAL_FLOAT(t_val_ldouble, long double, "long double", 21)
#undef T_VAL_SIGNED
#undef T_VAL_UNSIGNED
#undef T_VAL_FLOAT

static inline struct t_val t_val_bool(bool x)
{
	struct t_val r = {T_BOOL, "bool", 0, 0, {.u = x}};

	return r;
}

static inline struct t_val t_val_char(char x)
{
	struct t_val r = {T_CHAR, "char", 0, 0, {.i = 0}};

#if CHAR_MIN < 0
	r.v.i = x;
#else
	r.v.u = x;
#endif
	return r;
}

static inline struct t_val t_val_ptr(const volatile void *x)
{
	struct t_val r = {T_PTR, "pointer", 0, 0, {.p = x}};

	return r;
}

/* The operand as a struct t_val; evaluates @x once.  (clang-format 14
 * cannot lay out _Generic.) */
/* clang-format off */
#define T_VAL(x)                                                                                                       \
	_Generic((x),                                                                                                  \
		bool: t_val_bool,                                                                                      \
		char: t_val_char,                                                                                      \
		signed char: t_val_schar,                                                                              \
		unsigned char: t_val_uchar,                                                                            \
		short: t_val_short,                                                                                    \
		unsigned short: t_val_ushort,                                                                          \
		int: t_val_int,                                                                                        \
		unsigned: t_val_uint,                                                                                  \
		long: t_val_long,                                                                                      \
		unsigned long: t_val_ulong,                                                                            \
		long long: t_val_llong,                                                                                \
		unsigned long long: t_val_ullong,                                                                      \
		float: t_val_float,                                                                                    \
		double: t_val_double,                                                                                  \
		long double: t_val_ldouble,                                                                            \
		default: t_val_ptr)(x)
/* clang-format on */

static inline bool t_negative(const struct t_val *a)
{
	return (a->kind == T_SIGNED || (a->kind == T_CHAR && CHAR_MIN < 0)) && a->v.i < 0;
}

/* A non-negative integer, bool or pointer operand as unsigned long long. */
static inline unsigned long long t_as_u(const struct t_val *a)
{
	switch (a->kind) {
	case T_SIGNED:
		return (unsigned long long)a->v.i;
	case T_CHAR:
		return CHAR_MIN < 0 ? (unsigned long long)a->v.i : a->v.u;
	case T_PTR:
		return (uintptr_t)a->v.p;
	default:
		return a->v.u;
	}
}

static inline long double t_as_ld(const struct t_val *a)
{
	if (a->kind == T_FLOAT)
		return a->f;
	if (t_negative(a))
		return (long double)a->v.i;
	return (long double)t_as_u(a);
}

/* -1, 0 or 1 as @a is below, equal to or above @b, as numbers; 2 when
 * they are unordered (a NaN). */
static inline int t_cmp(const struct t_val *a, const struct t_val *b)
{
	bool an, bn;

	if (a->kind == T_FLOAT || b->kind == T_FLOAT) {
		long double x = t_as_ld(a), y = t_as_ld(b);

		return x < y ? -1 : x > y ? 1 : x == y ? 0 : 2;
	}
	an = t_negative(a);
	bn = t_negative(b);
	if (an != bn)
		return an ? -1 : 1;
	if (an)
		return a->v.i < b->v.i ? -1 : a->v.i > b->v.i;
	return t_as_u(a) < t_as_u(b) ? -1 : t_as_u(a) > t_as_u(b);
}

enum t_op { T_EQ, T_NE, T_LT, T_LE, T_GT, T_GE };

static inline bool t_holds(enum t_op op, const struct t_val *a, const struct t_val *b)
{
	int c = t_cmp(a, b);

	switch (op) {
	case T_EQ:
		return c == 0;
	case T_NE:
		return c != 0;
	case T_LT:
		return c == -1;
	case T_LE:
		return c == -1 || c == 0;
	case T_GT:
		return c == 1;
	default:
		return c == 1 || c == 0;
	}
}

/* "15 (unsigned long)", "4096 (0x1000, unsigned long)", "-22 (int)",
 * "true (bool)", "97 'a' (char)", "0x7f12... (pointer)" */
static inline const char *t_show(const struct t_val *a, char *buf, size_t n)
{
	unsigned long long u = t_as_u(a);

	switch (a->kind) {
	case T_FLOAT:
		snprintf(buf, n, "%.*Lg (%s)", a->digits, a->f, a->type);
		break;
	case T_PTR:
		snprintf(buf, n, "%p (%s)", (const void *)a->v.p, a->type);
		break;
	case T_BOOL:
		snprintf(buf, n, "%s (%s)", u ? "true" : "false", a->type);
		break;
	case T_CHAR:
		if (!t_negative(a) && u >= 0x20 && u < 0x7f)
			snprintf(buf, n, "%llu '%c' (%s)", u, (int)u, a->type);
		else
			snprintf(buf, n, "%lld (%s)", t_negative(a) ? a->v.i : (long long)u, a->type);
		break;
	default:
		if (t_negative(a))
			snprintf(buf, n, "%lld (%s)", a->v.i, a->type);
		else if (u >= 0x10000)
			snprintf(buf, n, "%llu (%#llx, %s)", u, u, a->type);
		else
			snprintf(buf, n, "%llu (%s)", u, a->type);
	}
	return buf;
}

/* Whether @x @op @y holds; if not, a failure with both values.  The
 * operands are evaluated once, by T_VAL() in the macros below. */
static inline bool t_check(const char *file, int line, const char *verb, enum t_op op, const char *xs, const char *sym,
			   const char *ys, struct t_val x, struct t_val y)
{
	char bx[96], by[96];

	if (t_holds(op, &x, &y))
		return true;
	t_report(file, line, "%s %s %s %s: got %s and %s", verb, xs, sym, ys, t_show(&x, bx, sizeof(bx)),
		 t_show(&y, by, sizeof(by)));
	return false;
}

/* (the operands are spelt out by the outermost macro, before expansion) */
#define T_CHECK(verb, op, sym, xs, ys, x, y) t_check(__FILE__, __LINE__, verb, op, xs, sym, ys, T_VAL(x), T_VAL(y))
#define T_EXPECT(op, sym, xs, ys, x, y)                                                                                \
	do {                                                                                                           \
		T_CHECK("expected", op, sym, xs, ys, x, y);                                                            \
	} while (0)
#define T_ASSERT(op, sym, xs, ys, x, y)                                                                                \
	do {                                                                                                           \
		if (!T_CHECK("assert", op, sym, xs, ys, x, y))                                                         \
			return;                                                                                        \
	} while (0)

#define EXPECT_EQ(x, y) T_EXPECT(T_EQ, "==", #x, #y, x, y)
#define EXPECT_NE(x, y) T_EXPECT(T_NE, "!=", #x, #y, x, y)
#define EXPECT_LT(x, y) T_EXPECT(T_LT, "<", #x, #y, x, y)
#define EXPECT_LE(x, y) T_EXPECT(T_LE, "<=", #x, #y, x, y)
#define EXPECT_GT(x, y) T_EXPECT(T_GT, ">", #x, #y, x, y)
#define EXPECT_GE(x, y) T_EXPECT(T_GE, ">=", #x, #y, x, y)
#define ASSERT_EQ(x, y) T_ASSERT(T_EQ, "==", #x, #y, x, y)
#define ASSERT_NE(x, y) T_ASSERT(T_NE, "!=", #x, #y, x, y)
#define ASSERT_LT(x, y) T_ASSERT(T_LT, "<", #x, #y, x, y)
#define ASSERT_LE(x, y) T_ASSERT(T_LE, "<=", #x, #y, x, y)
#define ASSERT_GT(x, y) T_ASSERT(T_GT, ">", #x, #y, x, y)
#define ASSERT_GE(x, y) T_ASSERT(T_GE, ">=", #x, #y, x, y)

/* ---- skipping, running, the plan ---- */

__attribute__((format(printf, 1, 2))) static inline void t_skip(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(t_skip_reason, sizeof(t_skip_reason), fmt, ap);
	va_end(ap);
	for (char *p = t_skip_reason; *p; p++)
		if (*p == '\n')
			*p = ' ';
	t_cur_skipped = 1;
}

#define SKIP(...)                                                                                                      \
	do {                                                                                                           \
		t_skip(__VA_ARGS__);                                                                                   \
		return;                                                                                                \
	} while (0)

#define RUN(fn) t_run(#fn, fn)

/* Call first in main(): the name filter, and stdout line-buffered (so
 * that a forked child that exits never prints the parent's lines again). */
static inline void t_init(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = 1; i < argc; i++) {
		if (argv[i][0] == '-') {
			fprintf(stderr,
				"usage: %s [NAME...]\n"
				"Runs the tests whose name contains one of the NAMEs (all without one); prints TAP.\n",
				argv[0]);
			exit(2);
		}
	}
	t_filters = argv + 1;
	t_nfilters = argc > 1 ? argc - 1 : 0;
	printf("TAP version 13\n");
}

static inline bool t_selected(const char *name)
{
	if (!t_nfilters)
		return true;
	for (int i = 0; i < t_nfilters; i++)
		if (strstr(name, t_filters[i]))
			return true;
	return false;
}

static inline void t_run(const char *name, void (*fn)(void))
{
	if (t_nseen < (int)(sizeof(t_seen) / sizeof(t_seen[0])))
		t_seen[t_nseen++] = name;
	if (!t_selected(name))
		return;
	t_cur = name;
	t_cur_failed = t_cur_skipped = 0;
	fflush(stdout);
	fn();
	t_num++;
	if (t_cur_failed) {
		t_failed++;
		printf("not ok %d - %s\n", t_num, name);
	} else if (t_cur_skipped) {
		t_skipped++;
		printf("ok %d - %s # SKIP %s\n", t_num, name, t_skip_reason);
	} else {
		t_passed++;
		printf("ok %d - %s\n", t_num, name);
	}
	fflush(stdout);
	t_cur = NULL;
}

/* The plan and a summary; main's return value (1 if a test failed, 2 if
 * the filter matched none). */
static inline int t_done(const char *prog)
{
	if (t_nfilters && !t_num) {
		char names[4096] = "";

		for (int i = 0; i < t_nseen; i++)
			snprintf(names + strlen(names), sizeof(names) - strlen(names), " %s", t_seen[i]);
		t_diag("%s: no test name contains \"%s\"%s; the tests are:%s", prog, t_filters[0],
		       t_nfilters > 1 ? " (or the other NAMEs)" : "", names);
		return 2;
	}
	t_note("%s: %d passed, %d failed, %d skipped", prog, t_passed, t_failed, t_skipped);
	printf("1..%d\n", t_num);
	fflush(stdout);
	return t_failed ? 1 : 0;
}

/* ---- helpers shared by the suites ---- */

static inline struct zp_arena *t_arena(size_t pages, unsigned max_order, unsigned flags)
{
	struct zp_config c = {.size = pages * ZP_PAGE_SIZE, .max_order = max_order, .flags = flags};
	struct zp_arena *a = zp_arena_create(&c);

	if (!a) {
		t_diag("zp_arena_create: %s", strerror(errno));
		abort();
	}
	return a;
}

static inline size_t t_pfn(struct zp_arena *a, const void *p)
{
	return (size_t)((const char *)p - a->base) >> ZP_PAGE_SHIFT;
}

/* What a clear hook (zp_test_set_clear_hook(a, t_see, &seen)) saw: clears,
 * pages in all, non-temporal, hot (clear_small_dirty_block()'s), by the
 * small primitive, and the last clear. */
struct t_seen {
	size_t n;
	size_t pages, nt_pages, hot_pages, small_pages;
	size_t last_pfn, last_n;
};

static inline void t_see(void *ctx, const struct clear_event *ev)
{
	struct t_seen *s = ctx;

	s->n++;
	s->pages += ev->nr_pages;
	s->nt_pages += ev->nt ? ev->nr_pages : 0;
	s->hot_pages += ev->hot ? ev->nr_pages : 0;
	s->small_pages += strcmp(ev->impl, zero_small_name()) ? 0 : ev->nr_pages;
	s->last_pfn = ev->pfn;
	s->last_n = ev->nr_pages;
}

/* Allocate @n (at most 128) blocks of @order, write them, free them: dirty
 * free memory.  Aborts if an allocation fails. */
static inline void t_dirty(struct zp_arena *a, unsigned order, int n)
{
	void *p[128];

	if (n > 128)
		abort();
	for (int i = 0; i < n; i++) {
		p[i] = zp_alloc_pages(a, 0, order, ZP_USER_ADDR_NONE);
		if (!p[i])
			abort();
		memset(p[i], 0x3c, ZP_PAGE_SIZE << order);
	}
	for (int i = 0; i < n; i++)
		zp_free_pages(a, p[i], order);
}

/* A "Name: N kB" line of /proc/self/status (@field: "VmRSS", "VmLck"),
 * in KiB; -1 if unknown. */
static inline long t_status_kib(const char *field)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	size_t n = strlen(field);
	long kib = -1;

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, field, n) && line[n] == ':' && sscanf(line + n + 1, " %ld kB", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

/* This process's resident memory, in KiB (-1 if unknown). */
static inline long t_rss_kib(void)
{
	return t_status_kib("VmRSS");
}

static inline int t_all_zero(const void *p, size_t len)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < len; i++)
		if (c[i])
			return 0;
	return 1;
}

static inline struct zp_stats t_stats(struct zp_arena *a)
{
	struct zp_stats s;

	zp_arena_stats(a, &s);
	return s;
}

/* Field by field: the struct has padding, whose bytes memcmp would compare. */
/* Reap the child @pid: its exit code, or -1 when it was killed (which
 * this reports, SIGALRM as a hang) or could not be waited for.  A child
 * that finds a failure exits with a code its parent turns into words. */
static inline int t_wait_child(pid_t pid)
{
	int st = 0;

	if (waitpid(pid, &st, 0) != pid) {
		t_diag("waitpid(%d): %s", (int)pid, strerror(errno));
		return -1;
	}
	if (WIFSIGNALED(st)) {
		t_diag("child killed by signal %d%s", WTERMSIG(st), WTERMSIG(st) == SIGALRM ? " (a hang)" : "");
		return -1;
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Run @body in a forked child (it ends with _exit(status)) and wait for
 * it: its exit status, or -1 when it died (a hang under alarm() is a
 * SIGALRM, said as such). */
static inline int t_in_child(void (*body)(void))
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		t_diag("fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		body();
		_exit(0);
	}
	return t_wait_child(pid);
}

static inline int t_stats_equal(const struct zp_stats *x, const struct zp_stats *y)
{
	return x->nr_pages == y->nr_pages && x->nr_free == y->nr_free && x->nr_free_zeroed == y->nr_free_zeroed &&
	       x->nr_free_reported == y->nr_free_reported && x->pages_cleared == y->pages_cleared &&
	       x->pages_clear_skipped == y->pages_clear_skipped && x->pages_reported == y->pages_reported &&
	       x->pages_refaulted == y->pages_refaulted && x->verify_failures == y->verify_failures &&
	       x->pages_prezeroed == y->pages_prezeroed && x->report_zeroes == y->report_zeroes;
}

#endif
