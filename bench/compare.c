/* SPDX-License-Identifier: MIT */
/*
 * zpage-bench compare OLD.json NEW.json: for every scenario, row and metric
 * in both files (as --json writes them, results.c), the ratio of the
 * medians (new / old; with --repeat runs, of the medians of the run
 * medians) and whether the difference stands out from the spread: a
 * Mann-Whitney U test (the test benchstat uses), two-sided, normal
 * approximation with tie and continuity correction, over the run medians
 * when both sides have MIN_RUNS runs or more (so the run-to-run drift of a
 * shared machine is part of the spread), else over the samples the JSON
 * keeps (every run's pooled).  The p values of all rows are corrected for
 * their number in each column of a scenario's table (Benjamini-Hochberg q,
 * false discovery rate 0.05), and a
 * change of the median under FLOOR is never flagged.  A row whose counts
 * could not reach p < alpha even if every new observation were above
 * every old one (3 and 3, say) is "too few samples".
 *
 * zpage-bench compare OLD.json... -- NEW.json...: each side is several
 * files whose runs are pooled, as if one invocation had made them all --
 * what bench/ab.sh writes when it runs two builds in alternation, one run
 * per invocation, so that a drift of the machine falls on both sides.
 *
 * Bad input -- a file missing or unreadable, JSON that is malformed or not
 * zpage-bench's, no row in common -- is one line on stderr and exit 2.
 *
 * The JSON reader takes RFC 8259 JSON whole and strictly (no trailing
 * commas, comments, bare words or control characters in strings; one
 * value and nothing after it), then checks the shape zpage-bench writes.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "results.h"

#define ALPHA	  0.05
#define MAX_DEPTH 64
#define MIN_RUNS  5	/* runs on each side for the test over run medians */
#define FLOOR	  0.05	/* a change of the median under 5% is never flagged */

/* ---- the JSON reader ---- */

enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };
struct jval {
	enum jtype t;
	double num;	/* J_NUM; J_BOOL: 0 or 1 */
	char *str;	/* J_STR */
	struct jval *v; /* J_ARR, J_OBJ: the items */
	char **keys;	/* J_OBJ: the items' keys */
	size_t n, cap;
};

struct parser {
	const char *s, *p, *end;
	char *err; /* the first error, with its line and column */
};

static bool fail(struct parser *ps, const char *what)
{
	const char *line_start = ps->s;
	int line = 1;

	if (ps->err)
		return false;
	for (const char *q = ps->s; q < ps->p; q++)
		if (*q == '\n')
			line++, line_start = q + 1;
	if (ps->p >= ps->end)
		ps->err = xasprintf("malformed JSON: %s at the end of the file (line %d)", what, line);
	else
		ps->err = xasprintf("malformed JSON: %s at line %d, column %d", what, line,
				    (int)(ps->p - line_start) + 1);
	return false;
}

static void skip_ws(struct parser *ps)
{
	while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
		ps->p++;
}

static bool eat(struct parser *ps, char c)
{
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == c) {
		ps->p++;
		return true;
	}
	return false;
}

/* The 4 hex digits at @p, or -1. */
static int hex4(const char *p)
{
	int v = 0;

	for (int i = 0; i < 4; i++) {
		int c = p[i], d = c >= '0' && c <= '9'	 ? c - '0'
				  : c >= 'a' && c <= 'f' ? c - 'a' + 10
				  : c >= 'A' && c <= 'F' ? c - 'A' + 10
							 : -1;

		if (d < 0)
			return -1;
		v = v * 16 + d;
	}
	return v;
}

static void put_utf8(char **b, size_t *n, size_t *cap, unsigned cp)
{
	GROW(*b, *cap, *n + 5);
	if (cp < 0x80) {
		(*b)[(*n)++] = (char)cp;
	} else if (cp < 0x800) {
		(*b)[(*n)++] = (char)(0xc0 | cp >> 6);
		(*b)[(*n)++] = (char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		(*b)[(*n)++] = (char)(0xe0 | cp >> 12);
		(*b)[(*n)++] = (char)(0x80 | (cp >> 6 & 0x3f));
		(*b)[(*n)++] = (char)(0x80 | (cp & 0x3f));
	} else {
		(*b)[(*n)++] = (char)(0xf0 | cp >> 18);
		(*b)[(*n)++] = (char)(0x80 | (cp >> 12 & 0x3f));
		(*b)[(*n)++] = (char)(0x80 | (cp >> 6 & 0x3f));
		(*b)[(*n)++] = (char)(0x80 | (cp & 0x3f));
	}
}

/* A string, *ps->p at its opening quote. */
static bool parse_string(struct parser *ps, char **out)
{
	static const char esc[] = "\"\\/bfnrt", val[] = "\"\\/\b\f\n\r\t";
	char *b = NULL;
	size_t n = 0, cap = 0;

	for (ps->p++; ps->p < ps->end && *ps->p != '"'; ps->p++) {
		unsigned char c = (unsigned char)*ps->p;
		const char *e;

		if (c < 0x20)
			return fail(ps, "a control character in a string");
		if (c != '\\') {
			GROW(b, cap, n + 1);
			b[n++] = (char)c;
			continue;
		}
		if (++ps->p >= ps->end)
			break;
		if (*ps->p && (e = strchr(esc, *ps->p))) {
			GROW(b, cap, n + 1);
			b[n++] = val[e - esc];
			continue;
		}
		int cp = *ps->p == 'u' && ps->end - ps->p > 4 ? hex4(ps->p + 1) : -1;
		if (cp < 0)
			return fail(ps, "a bad escape in a string");
		ps->p += 4;
		if (cp >= 0xdc00 && cp < 0xe000)
			return fail(ps, "a lone low surrogate in a string");
		if (cp >= 0xd800 && cp < 0xdc00) { /* a high surrogate: its low one must follow */
			int lo = ps->end - ps->p > 6 && ps->p[1] == '\\' && ps->p[2] == 'u' ? hex4(ps->p + 3) : -1;

			if (lo < 0xdc00 || lo >= 0xe000)
				return fail(ps, "a lone high surrogate in a string");
			cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			ps->p += 6;
		}
		put_utf8(&b, &n, &cap, (unsigned)cp);
	}
	if (ps->p >= ps->end)
		return fail(ps, "an unterminated string");
	ps->p++;
	GROW(b, cap, n + 1);
	b[n] = '\0';
	*out = b;
	return true;
}

static size_t digits(const char *p, const char *end)
{
	size_t n = 0;

	while (p + n < end && p[n] >= '0' && p[n] <= '9')
		n++;
	return n;
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool parse_number(struct parser *ps, double *out)
{
	const char *q = ps->p;
	size_t d;
	char *copy;

	q += q < ps->end && *q == '-';
	d = digits(q, ps->end);
	if (!d || (d > 1 && *q == '0'))
		return fail(ps, "a bad number");
	q += d;
	if (q < ps->end && *q == '.') {
		if (!(d = digits(++q, ps->end)))
			return fail(ps, "a bad number");
		q += d;
	}
	if (q < ps->end && (*q == 'e' || *q == 'E')) {
		q++;
		q += q < ps->end && (*q == '+' || *q == '-');
		if (!(d = digits(q, ps->end)))
			return fail(ps, "a bad number");
		q += d;
	}
	copy = xmemdup(ps->p, (size_t)(q - ps->p) + 1);
	copy[q - ps->p] = '\0';
	*out = strtod(copy, NULL);
	free(copy);
	ps->p = q;
	return true;
}

static bool parse_value(struct parser *ps, struct jval *v, int depth);

/* The items of an array or object, *ps->p at its opening bracket. */
static bool parse_items(struct parser *ps, struct jval *v, int depth)
{
	char close = v->t == J_OBJ ? '}' : ']';

	ps->p++;
	if (eat(ps, close))
		return true;
	do {
		GROW(v->v, v->cap, v->n + 1);
		if (v->t == J_OBJ) {
			v->keys = realloc(v->keys, v->cap * sizeof(*v->keys));
			if (!v->keys)
				die("out of memory");
			skip_ws(ps);
			if (ps->p >= ps->end || *ps->p != '"')
				return fail(ps, "expected a key");
			if (!parse_string(ps, &v->keys[v->n]))
				return false;
			if (!eat(ps, ':'))
				return fail(ps, "expected ':'");
		}
		if (!parse_value(ps, &v->v[v->n++], depth + 1))
			return false;
	} while (eat(ps, ','));
	if (!eat(ps, close))
		return fail(ps, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
	return true;
}

static bool parse_value(struct parser *ps, struct jval *v, int depth)
{
	static const struct {
		const char *word;
		enum jtype t;
		double num;
	} words[] = {{"null", J_NULL, 0}, {"true", J_BOOL, 1}, {"false", J_BOOL, 0}};

	*v = (struct jval){0};
	skip_ws(ps);
	if (depth > MAX_DEPTH)
		return fail(ps, "nesting too deep");
	if (ps->p >= ps->end)
		return fail(ps, "expected a value");
	switch (*ps->p) {
	case '{':
	case '[':
		v->t = *ps->p == '{' ? J_OBJ : J_ARR;
		return parse_items(ps, v, depth);
	case '"':
		v->t = J_STR;
		return parse_string(ps, &v->str);
	}
	if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9')) {
		v->t = J_NUM;
		return parse_number(ps, &v->num);
	}
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		size_t n = strlen(words[i].word);

		if ((size_t)(ps->end - ps->p) >= n && !strncmp(ps->p, words[i].word, n)) {
			ps->p += n;
			v->t = words[i].t;
			v->num = words[i].num;
			return true;
		}
	}
	return fail(ps, "expected a value");
}

/* Everything a parse allocated, a partial one's too (items are counted
 * before they are parsed, keys only once parsed). */
static void jval_free(struct jval *v)
{
	for (size_t i = 0; i < v->n; i++) {
		jval_free(&v->v[i]);
		if (v->keys)
			free(v->keys[i]);
	}
	free(v->v);
	free(v->keys);
	free(v->str);
}

static const struct jval *member(const struct jval *o, const char *key)
{
	for (size_t i = 0; o && o->t == J_OBJ && i < o->n; i++)
		if (!strcmp(o->keys[i], key))
			return &o->v[i];
	return NULL;
}

/* ---- one file: its rows, each with the medians and samples of its runs ---- */

struct row {
	const char *scenario, *row, *metric, *unit;
	double *medians, *samples;
	size_t nmed, capmed, ns, caps;
};

/* One side of the comparison: one file, or several whose runs are pooled
 * (zpage-bench compare OLD... -- NEW..., as bench/ab.sh writes them). */
struct jfile {
	const char *path;
	struct jval root; /* the rows point into it */
};

struct file {
	const char *path; /* the first file's */
	struct jfile **files;
	size_t nfiles, capfiles;
	const struct jval *env; /* the first file's */
	struct row *rows;
	size_t n, cap;
};

static void file_free(struct file *f)
{
	for (size_t i = 0; i < f->n; i++) {
		free(f->rows[i].medians);
		free(f->rows[i].samples);
	}
	free(f->rows);
	for (size_t i = 0; i < f->nfiles; i++) {
		jval_free(&f->files[i]->root);
		free(f->files[i]);
	}
	free(f->files);
}

static struct row *find_row(const struct file *f, const char *sc, const char *row, const char *metric)
{
	for (size_t i = 0; i < f->n; i++)
		if (!strcmp(f->rows[i].scenario, sc) && !strcmp(f->rows[i].row, row) &&
		    !strcmp(f->rows[i].metric, metric))
			return &f->rows[i];
	return NULL;
}

/* One result of the JSON into its row; NULL, or what is wrong with it. */
static char *add_result(struct file *f, const struct jval *r)
{
	static const char *const keys[] = {"scenario", "row", "metric", "unit"};
	const char *text[4];
	const struct jval *med = member(r, "median"), *samples = member(r, "samples");
	struct row *w;

	if (!r || r->t != J_OBJ)
		return xstrdup("is not an object");
	for (int k = 0; k < 4; k++) {
		const struct jval *s = member(r, keys[k]);

		if (!s || s->t != J_STR)
			return xasprintf("has no string \"%s\"", keys[k]);
		text[k] = s->str;
	}
	if (!med || (med->t != J_NUM && med->t != J_NULL))
		return xstrdup("has no number \"median\"");
	if (!samples || samples->t != J_ARR)
		return xstrdup("has no array \"samples\" (a JSON of a zpage-bench before compare?)");
	if (!(w = find_row(f, text[0], text[1], text[2]))) {
		GROW(f->rows, f->cap, f->n + 1);
		w = &f->rows[f->n++];
		*w = (struct row){.scenario = text[0], .row = text[1], .metric = text[2], .unit = text[3]};
	} else if (strcmp(w->unit, text[3])) {
		return xasprintf("has unit \"%s\" where an earlier run of the side has \"%s\"", text[3], w->unit);
	}
	if (med->t == J_NUM) {
		GROW(w->medians, w->capmed, w->nmed + 1);
		w->medians[w->nmed++] = med->num;
	}
	for (size_t i = 0; i < samples->n; i++) {
		if (samples->v[i].t == J_NULL) /* not finite when measured */
			continue;
		if (samples->v[i].t != J_NUM)
			return xstrdup("has a sample that is not a number");
		GROW(w->samples, w->caps, w->ns + 1);
		w->samples[w->ns++] = samples->v[i].num;
	}
	return NULL;
}

/* Read and check @path, adding its runs to side @f; NULL, or the one line
 * that says what is wrong. */
static char *load(struct file *f, const char *path)
{
	FILE *in = fopen(path, "rb");
	struct parser ps = {0};
	const struct jval *results;
	struct jfile *jf = xmalloc(sizeof(*jf));
	struct jval *root = &jf->root;
	char *buf = NULL;
	size_t n = 0, cap = 0, got;

	*jf = (struct jfile){.path = path};
	GROW(f->files, f->capfiles, f->nfiles + 1);
	f->files[f->nfiles++] = jf;
	if (!f->path)
		f->path = path;
	if (!in)
		return xasprintf("%s: %s", path, strerror(errno));
	do {
		GROW(buf, cap, n + 65536);
		got = fread(buf + n, 1, cap - n, in);
		n += got;
	} while (got);
	if (ferror(in)) {
		char *msg = xasprintf("%s: %s", path, strerror(errno));

		fclose(in);
		free(buf);
		return msg;
	}
	fclose(in);
	ps = (struct parser){.s = buf, .p = buf, .end = buf + n};
	if (parse_value(&ps, root, 0)) {
		skip_ws(&ps);
		if (ps.p < ps.end)
			fail(&ps, "text after the JSON");
	}
	free(buf); /* the values are copies */
	if (ps.err) {
		char *msg = xasprintf("%s: %s", path, ps.err);

		free(ps.err);
		return msg;
	}
	results = member(root, "results");
	if (!results || results->t != J_ARR)
		return xasprintf("%s: not a zpage-bench JSON (no \"results\" array)", path);
	if (f->nfiles == 1)
		f->env = member(root, "environment");
	for (size_t i = 0; i < results->n; i++) {
		char *why = add_result(f, &results->v[i]);

		if (why) {
			char *msg = xasprintf("%s: not a zpage-bench JSON: results[%zu] %s", path, i, why);
			free(why);
			return msg;
		}
	}
	return NULL;
}

/* ---- the test ---- */

struct obs {
	double v;
	bool is_new;
};

static int cmp_obs(const void *x, const void *y)
{
	double a = ((const struct obs *)x)->v, b = ((const struct obs *)y)->v;

	return a < b ? -1 : a > b;
}

/* The two-sided p of the Mann-Whitney U test of @a (old) against @b (new),
 * normal approximation with tie and continuity correction, and in *@dir
 * which way the new samples lean (+1 larger, -1 smaller, 0 neither); -1
 * when not even the most extreme ordering of this many samples could reach
 * p < ALPHA. */
static double mann_whitney(const double *a, size_t na, const double *b, size_t nb, int *dir)
{
	double n1 = (double)na, n2 = (double)nb, N = n1 + n2, mu = n1 * n2 / 2, ties = 0, rank_sum = 0, var, z;
	struct obs *o;

	*dir = 0;
	if (!na || !nb || erfc((mu - 0.5) / sqrt(n1 * n2 * (N + 1) / 12) / M_SQRT2) >= ALPHA)
		return -1;
	o = xmalloc((na + nb) * sizeof(*o));
	for (size_t i = 0; i < na + nb; i++)
		o[i] = (struct obs){i < na ? a[i] : b[i - na], i >= na};
	qsort(o, na + nb, sizeof(*o), cmp_obs);
	for (size_t i = 0, j; i < na + nb; i = j) { /* o[i..j-1] tie: each has the mean of ranks i+1..j */
		double t;

		for (j = i; j < na + nb && o[j].v == o[i].v; j++)
			;
		for (size_t k = i; k < j; k++)
			rank_sum += o[k].is_new ? 0 : (double)(i + 1 + j) / 2;
		t = (double)(j - i);
		ties += t * t * t - t;
	}
	free(o);
	z = rank_sum - n1 * (n1 + 1) / 2 - mu; /* U of the old samples, centred: > 0 when they rank higher */
	*dir = z < 0 ? 1 : z > 0 ? -1 : 0;
	var = n1 * n2 / 12 * ((N + 1) - ties / (N * (N - 1)));
	if (var <= 0)
		return 1;
	z = (fabs(z) - 0.5) / sqrt(var);
	return z <= 0 ? 1 : erfc(z / M_SQRT2);
}

/* ---- the report ---- */

static char *env_text(const struct jval *v)
{
	if (!v)
		return xstrdup("(none)");
	if (v->t == J_STR)
		return xstrdup(v->str);
	if (v->t == J_NUM)
		return xasprintf("%g", v->num);
	return xstrdup(v->t == J_NULL ? "null" : v->t == J_BOOL ? (v->num ? "true" : "false") : "(a list)");
}

/* Print the fields of environments @x and @y that differ (a field only one
 * has included), but for the date and the command line, under @head;
 * returns how many. */
static int env_fields(const struct jval *x, const struct jval *y, const char *head)
{
	int n = 0;

	for (int pass = 0; pass < 2; pass++) {
		const struct jval *e = pass ? y : x, *other = pass ? x : y;

		for (size_t i = 0; e && e->t == J_OBJ && i < e->n; i++) {
			const char *k = e->keys[i];
			char *a, *b;

			if (!strcmp(k, "date") || !strcmp(k, "command") || (pass && member(other, k)))
				continue; /* the second pass: only the fields @x lacks */
			a = env_text(pass ? NULL : &e->v[i]);
			b = env_text(pass ? &e->v[i] : member(other, k));
			if (strcmp(a, b))
				printf("%s  %s: %s -> %s\n", n++ ? "" : head, k, a, b);
			free(a);
			free(b);
		}
	}
	return n;
}

/* The environment fields that differ between the sides, and within a side
 * of several files (which should have run on one machine). */
static void env_diff(const struct file *old, const struct file *new)
{
	const struct file *side[2] = {old, new};

	if (!old->env || !new->env)
		printf("environment: %s has none\n", old->env ? new->path : old->path);
	else if (!env_fields(old->env, new->env, "environment, where it differs:\n"))
		printf("environment: the same (the date and command line aside)\n");
	for (int s = 0; s < 2; s++)
		for (size_t i = 1; i < side[s]->nfiles; i++) {
			const struct jval *e = member(&side[s]->files[i]->root, "environment");
			char *head = xasprintf("environment of %s, where it differs from %s:\n",
					       side[s]->files[i]->path, side[s]->path);

			if (!e || !side[s]->env)
				printf("environment: %s has none\n", e ? side[s]->path : side[s]->files[i]->path);
			else
				env_fields(side[s]->env, e, head);
			free(head);
		}
}

/* One common row's test, before the correction for the number of rows. */
struct test {
	const struct row *a, *b;
	double m0, m1; /* old and new medians (of the run medians) */
	double p, q;   /* p < 0: too few observations; q: Benjamini-Hochberg */
	int dir;       /* which way the new observations lean */
	bool runs;     /* tested over run medians (else over pooled samples) */
	size_t n0, n1;
};

static void run_test(struct test *t)
{
	const struct row *a = t->a, *b = t->b;

	t->m0 = median(a->medians, a->nmed);
	t->m1 = median(b->medians, b->nmed);
	t->runs = a->nmed >= MIN_RUNS && b->nmed >= MIN_RUNS;
	if (t->runs) {
		t->n0 = a->nmed, t->n1 = b->nmed;
		t->p = mann_whitney(a->medians, a->nmed, b->medians, b->nmed, &t->dir);
	} else {
		t->n0 = a->ns, t->n1 = b->ns;
		t->p = mann_whitney(a->samples, a->ns, b->samples, b->ns, &t->dir);
	}
	t->q = t->p;
}

static int cmp_p(const void *x, const void *y)
{
	double a = (*(const struct test *const *)x)->p, b = (*(const struct test *const *)y)->p;

	return a < b ? -1 : a > b;
}

/* The family of t[first]: q of each of its tested rows; marks them done. */
static void bh_family(struct test *t, size_t n, size_t first, struct test **by_p, bool *done)
{
	const char *sc = t[first].a->scenario, *metric = t[first].a->metric;
	size_t m = 0;
	double q = 1;

	for (size_t i = first; i < n; i++) {
		if (done[i] || strcmp(t[i].a->scenario, sc) || strcmp(t[i].a->metric, metric))
			continue;
		done[i] = true;
		if (t[i].p >= 0 && !strcmp(t[i].a->unit, t[i].b->unit))
			by_p[m++] = &t[i];
	}
	qsort(by_p, m, sizeof(*by_p), cmp_p);
	for (size_t k = m; k-- > 0;) {
		double v = by_p[k]->p * (double)m / (double)(k + 1);

		q = v < q ? v : q;
		by_p[k]->q = q;
	}
}

/* Benjamini-Hochberg: each tested row's q, the smallest false discovery
 * rate at which it would be flagged among the rows tested in its family:
 * one column of one scenario's table (the same scenario and metric), what a
 * reader scans for a change. */
static void bh_adjust(struct test *t, size_t n)
{
	struct test **by_p = xmalloc((n ? n : 1) * sizeof(*by_p));
	bool *done = xmalloc((n ? n : 1) * sizeof(*done));

	for (size_t i = 0; i < n; i++)
		done[i] = false;
	for (size_t i = 0; i < n; i++) {
		if (!done[i])
			bh_family(t, n, i, by_p, done);
	}
	free(done);
	free(by_p);
}


/* One row: old and new medians, new/old, the verdict; counts it in @tally
 * (worse, better, ~, too few, higher/lower). */
static void print_row(const struct test *t, int tally[5])
{
	const struct row *a = t->a, *b = t->b;
	char v0[32], v1[32], ratio[32], verdict[128], stat[80], *what = xasprintf("%s (%s)", a->metric, a->unit);
	double r = t->m0 > 0 && isfinite(t->m1) ? t->m1 / t->m0 : NAN;

	fmt_val(v0, sizeof(v0), t->m0);
	fmt_val(v1, sizeof(v1), t->m1);
	if (isfinite(r))
		snprintf(ratio, sizeof(ratio), r < 100 ? "%.2f" : "%.0f", r);
	else
		snprintf(ratio, sizeof(ratio), "-");
	snprintf(stat, sizeof(stat), "p=%.3f q=%.3f n=%zu+%zu %s", t->p, t->q, t->n0, t->n1,
		 t->runs ? "runs" : "samples");
	if (strcmp(a->unit, b->unit)) {
		snprintf(verdict, sizeof(verdict), "units differ (%s, %s)", a->unit, b->unit);
		tally[3]++;
	} else if (t->p < 0) {
		snprintf(verdict, sizeof(verdict), "too few samples (n=%zu+%zu %s)", t->n0, t->n1,
			 t->runs ? "runs" : "samples");
		tally[3]++;
	} else if (t->q >= ALPHA) {
		snprintf(verdict, sizeof(verdict), "~ (%s)", stat);
		tally[2]++;
	} else if (isfinite(r) && fabs(r - 1) < FLOOR) {
		snprintf(verdict, sizeof(verdict), "~ within %.0f%% (%s)", FLOOR * 100, stat);
		tally[2]++;
	} else {
		int up = t->m1 > t->m0 ? 1 : t->m1 < t->m0 ? -1 : t->dir; /* the medians say, else the ranks */
		bool worse = (up > 0) != higher_is_better(a->unit);

		if (!strcmp(a->unit, "x") || !strcmp(a->unit, "paired")) {
			/* a ratio of two rows: which way is better depends on the row */
			snprintf(verdict, sizeof(verdict), "%s (%s)", up > 0 ? "higher" : "lower", stat);
			tally[4]++;
		} else {
			snprintf(verdict, sizeof(verdict), "%s (%s)", worse ? "worse" : "better", stat);
			tally[worse ? 0 : 1]++;
		}
	}
	printf("  %-34s %-36s %10s %10s %8s  %s\n", a->row, what, v0, v1, ratio, verdict);
	free(what);
}

int compare_main(int argc, char **argv)
{
	struct file f[2] = {{0}};
	int tally[5] = {0}, only[2] = {0}, sep = -1;
	bool lists;
	const char *sc = NULL;
	struct test *tests;
	size_t nt = 0;
	char *err;

	for (int i = 0; i < argc; i++)
		if (!strcmp(argv[i], "--")) {
			sep = i;
			break;
		}
	if (sep < 0 ? argc != 2 : sep == 0 || sep == argc - 1) {
		fprintf(stderr, "zpage-bench compare: wants two files, or two lists of them: zpage-bench compare "
				"OLD.json NEW.json, or OLD.json... -- NEW.json...\n");
		return 2;
	}
	lists = sep >= 0;
	if (sep < 0)
		sep = 1;
	for (int i = 0; i < argc; i++) {
		struct stat si, sj;

		if (lists && i == sep)
			continue;
		if (!strcmp(argv[i], "--")) {
			fprintf(stderr, "zpage-bench compare: -- given twice\n");
			file_free(&f[0]);
			file_free(&f[1]);
			return 2;
		}
		/* in lists, a run counted twice would pass for two (OLD NEW: a
		 * file against itself is a check that nothing stands out) */
		for (int j = 0; lists && j < i; j++)
			if (j != sep && !stat(argv[i], &si) && !stat(argv[j], &sj) && si.st_dev == sj.st_dev &&
			    si.st_ino == sj.st_ino) {
				fprintf(stderr, "zpage-bench compare: %s given twice (as %s): each run may count once\n",
					argv[i], argv[j]);
				file_free(&f[0]);
				file_free(&f[1]);
				return 2;
			}
		if ((err = load(&f[i >= sep], argv[i]))) {
			fprintf(stderr, "zpage-bench compare: %s\n", err);
			free(err);
			file_free(&f[0]);
			file_free(&f[1]);
			return 2;
		}
	}
	for (int i = 0; i < 2; i++)
		for (size_t k = 0; k < f[i].n; k++)
			only[i] += !find_row(&f[!i], f[i].rows[k].scenario, f[i].rows[k].row, f[i].rows[k].metric);
	if ((size_t)only[0] == f[0].n) {
		fprintf(stderr, "zpage-bench compare: %s and %s have no scenario, row and metric in common\n", f[0].path,
			f[1].path);
		file_free(&f[0]);
		file_free(&f[1]);
		return 2;
	}
	printf("zpage-bench compare: old %s", f[0].path);
	if (f[0].nfiles > 1)
		printf(" and %zu more", f[0].nfiles - 1);
	printf(", new %s", f[1].path);
	if (f[1].nfiles > 1)
		printf(" and %zu more", f[1].nfiles - 1);
	printf("%s\n", f[0].nfiles > 1 || f[1].nfiles > 1 ? " (the runs of a side's files pooled)" : "");
	env_diff(&f[0], &f[1]);
	printf("new/old: the ratio of the medians (of a row's runs: the median of the run medians)\n"
	       "test: Mann-Whitney U, two-sided, normal approximation with tie and continuity correction:\n"
	       "      over the run medians when both sides have at least %d runs of the row in all (a file's\n"
	       "      --repeat runs, summed over the side's files):\n"
	       "      runs differ by the machine's drift too, so that is what a difference must stand out from;\n"
	       "      else over the samples (the JSON keeps up to 200 per row and run; runs pooled), which\n"
	       "      share their run's conditions: a drift between two runs can pass for a change\n"
	       "q: Benjamini-Hochberg over the rows of one column of a scenario's table (its family), so that\n"
	       "      about %.0f%% of the flags or fewer are false; a lone change among m rows needs p < %.2f/m:\n"
	       "      over run medians, 5 runs reach p = 0.012, 8 runs 0.001, 10 runs 0.0002\n"
	       "verdict: '~' q >= %.2f, or a change of the median under %.0f%% (the floor); 'worse' or 'better'\n"
	       "      q < %.2f ('higher' or 'lower' for a ratio of two rows, x or paired, whose better\n"
	       "      direction depends on the row); 'too few samples' when even the most extreme ordering\n"
	       "      of that many would not reach p < %.2f (Mann-Whitney U)\n"
	       "caution: runs of one invocation share its hour; a load that changed between OLD's and NEW's\n"
	       "      invocations (this machine's memory bandwidth drifts 20-80 GB/s) is a real difference\n"
	       "      between the files, not a change of the code: to compare two builds, run them in\n"
	       "      alternation, one run per invocation (bench/ab.sh OLD-BENCH NEW-BENCH RUNS ...), so a\n"
	       "      drift falls on both sides alike, and compare the lists: OLD.json... -- NEW.json...\n",
	       MIN_RUNS, ALPHA * 100, ALPHA, ALPHA, FLOOR * 100, ALPHA, ALPHA);
	tests = xmalloc((f[0].n ? f[0].n : 1) * sizeof(*tests));
	for (size_t k = 0; k < f[0].n; k++) {
		const struct row *a = &f[0].rows[k], *b = find_row(&f[1], a->scenario, a->row, a->metric);

		if (!b)
			continue;
		tests[nt] = (struct test){.a = a, .b = b};
		run_test(&tests[nt++]);
	}
	bh_adjust(tests, nt);
	for (size_t k = 0; k < nt; k++) {
		const struct row *a = tests[k].a;

		if (!sc || strcmp(sc, a->scenario)) {
			sc = a->scenario;
			printf("\n== %s\n  %-34s %-36s %10s %10s %8s  %s\n", sc, "row", "metric (unit)", "old", "new",
			       "new/old", "verdict");
		}
		print_row(&tests[k], tally);
	}
	free(tests);
	printf("\n%d worse, %d better, %d ratios higher or lower, %d ~, %d too few samples", tally[0], tally[1],
	       tally[4], tally[2], tally[3]);
	printf("; %d only in old, %d only in new\n", only[0], only[1]);
	file_free(&f[0]);
	file_free(&f[1]);
	return 0;
}
