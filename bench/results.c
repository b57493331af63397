/* SPDX-License-Identifier: MIT */
/*
 * zpage-bench results: every metric of every row (median, p10, p90 and
 * the samples), the series of the line charts, the notes and reference
 * rows of each scenario, each with the --repeat run it belongs to; and the
 * three ways they are written out: a text table per scenario and run (and
 * with --repeat, one of the spread of the run medians and one of zpage's
 * rows against their peers, run by run), CSV (RFC 4180
 * quoting) and JSON (every string escaped, a number that is not finite
 * written as null).  CSV and JSON start with the environment (env.c).
 *
 * CSV: the header "scenario,row,metric,unit,median,p10,p90,samples,run",
 * then the environment as rows of the same nine fields whose scenario is
 * "environment", row the field's name and metric its value (the other
 * fields empty), then a row per result (samples: how many were measured;
 * run: 1, 2, ... of --repeat).  Every line has the nine fields, so any
 * CSV reader takes it; drop the "environment" rows to get the figures.
 *
 * JSON: {"environment": {name: value, ...}, "runs": N, "samples_kept": a
 * sentence, "results": [{"scenario", "row", "metric", "unit", "median",
 * "p10", "p90", "n" (samples measured), "run", "samples": [...]}, ...]}.
 * "samples" keeps every sample when there are at most SAMPLES_KEPT (in the
 * order measured), else SAMPLES_KEPT order statistics evenly spaced from
 * the smallest to the largest: what `zpage-bench compare` tests.
 *
 * Nothing here has a fixed size: every string is copied whole and every
 * list grows, so no result, note or row is ever dropped or cut short.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "results.h"

#define SAMPLES_KEPT 200

static unsigned cur_run;
static struct res *res;
static size_t nres, capres;
static struct ser *sers;
static size_t nsers, capsers;
static struct {
	char *scenario, *text;
	unsigned run;
} * notes;
static size_t nnotes, capnotes;
static struct {
	char *scenario, *row, *other; /* other: NULL for the reference row, else @row's counterpart */
} * refs;
static size_t nrefs, caprefs;

void results_set_run(unsigned run)
{
	cur_run = run;
}

void result(const char *scenario, const char *row, const char *metric, const char *unit, const double *samples,
	    size_t n)
{
	GROW(res, capres, nres + 1);
	res[nres++] = (struct res){
		.scenario = xstrdup(scenario),
		.row = xstrdup(row),
		.metric = xstrdup(metric),
		.unit = xstrdup(unit),
		.median = pct(samples, n, 50),
		.p10 = pct(samples, n, 10),
		.p90 = pct(samples, n, 90),
		.samples = xmemdup(samples, n * sizeof(double)),
		.n = n,
		.run = cur_run,
	};
}

void note(const char *scenario, const char *fmt, ...)
{
	va_list ap;

	GROW(notes, capnotes, nnotes + 1);
	notes[nnotes].scenario = xstrdup(scenario);
	notes[nnotes].run = cur_run;
	va_start(ap, fmt);
	notes[nnotes++].text = xvasprintf(fmt, ap);
	va_end(ap);
}

void reference(const char *scenario, const char *row)
{
	GROW(refs, caprefs, nrefs + 1);
	refs[nrefs].scenario = xstrdup(scenario);
	refs[nrefs].other = NULL;
	refs[nrefs++].row = xstrdup(row);
}

void counterpart(const char *scenario, const char *row, const char *other)
{
	GROW(refs, caprefs, nrefs + 1);
	refs[nrefs].scenario = xstrdup(scenario);
	refs[nrefs].other = xstrdup(other);
	refs[nrefs++].row = xstrdup(row);
}

void series(const char *scenario, const char *name, const double *x, const double *y, size_t n, const char *xlabel,
	    const char *ylabel)
{
	GROW(sers, capsers, nsers + 1);
	sers[nsers++] = (struct ser){
		.scenario = xstrdup(scenario),
		.name = xstrdup(name),
		.xlabel = xstrdup(xlabel),
		.ylabel = xstrdup(ylabel),
		.x = xmemdup(x, n * sizeof(double)),
		.y = xmemdup(y, n * sizeof(double)),
		.n = n,
		.run = cur_run,
	};
}

size_t results_count(void)
{
	return nres;
}

const struct res *result_at(size_t i)
{
	return &res[i];
}

size_t series_count(void)
{
	return nsers;
}

const struct ser *series_at(size_t i)
{
	return &sers[i];
}

const char *reference_of(const char *sc)
{
	for (size_t i = 0; i < nrefs; i++)
		if (!refs[i].other && !strcmp(refs[i].scenario, sc))
			return refs[i].row;
	return NULL;
}

const char *counterpart_of(const char *sc, const char *row)
{
	for (size_t i = 0; i < nrefs; i++)
		if (refs[i].other && !strcmp(refs[i].scenario, sc) && !strcmp(refs[i].row, row))
			return refs[i].other;
	return NULL;
}

/* The first of the @n results at @v of @sc with @row and @metric (NULL: any). */
static const struct res *find_in(const struct res *v, size_t n, const char *sc, const char *row, const char *metric)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].scenario, sc) && (!row || !strcmp(v[i].row, row)) &&
		    (!metric || !strcmp(v[i].metric, metric)))
			return &v[i];
	return NULL;
}

const struct res *find_result(size_t from, const char *sc, const char *row, const char *metric)
{
	return from < nres ? find_in(res + from, nres - from, sc, row, metric) : NULL;
}

bool higher_is_better(const char *unit)
{
	size_t n = strlen(unit);

	return n >= 2 && !strcmp(unit + n - 2, "/s");
}

void fmt_val(char *buf, size_t len, double v)
{
	if (v >= 1000)
		snprintf(buf, len, "%.0f", v);
	else if (v >= 10)
		snprintf(buf, len, "%.1f", v);
	else
		snprintf(buf, len, "%.2f", v);
}

void strlist_add(struct strlist *l, const char *s)
{
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->v[i], s))
			return;
	GROW(l->v, l->cap, l->n + 1);
	l->v[l->n++] = s;
}

void strlist_free(struct strlist *l)
{
	free(l->v);
	*l = (struct strlist){0};
}

void result_scenarios(size_t from, struct strlist *out)
{
	for (size_t i = from; i < nres; i++)
		strlist_add(out, res[i].scenario);
}

/* ---- the text tables ---- */

/* One cell, @w wide: "median [p10-p90]", then "x ref" (median / the
 * reference row's median) when the scenario has a reference row. */
static void print_cell(FILE *f, int w, const struct res *x, const struct res *rr, bool ref)
{
	char a[32], b[32], c[32], cell[128];

	if (!x) {
		fprintf(f, " %*s", w, "-");
		if (ref)
			fprintf(f, " %6s", "");
		return;
	}
	fmt_val(a, sizeof(a), x->median);
	fmt_val(b, sizeof(b), x->p10);
	fmt_val(c, sizeof(c), x->p90);
	snprintf(cell, sizeof(cell), "%s [%s-%s]", a, b, c);
	fprintf(f, " %*s", w, cell);
	if (!ref)
		return;
	if (rr && rr->median > 0)
		fprintf(f, " %6.3g", x->median / rr->median);
	else
		fprintf(f, " %6s", "");
}

/* The table of @sc from the @n results at @v: those of one run, with the
 * run's notes under it (@what NULL), or the spread over runs (@what says
 * what its cells are). */
static void print_table(FILE *f, const struct res *v, size_t n, const char *sc, const char *what)
{
	const char *ref = reference_of(sc);
	struct strlist metrics = {0}, rows = {0};
	unsigned run = 0;
	int *w;

	for (size_t j = 0; j < n; j++) {
		if (strcmp(v[j].scenario, sc))
			continue;
		strlist_add(&metrics, v[j].metric);
		strlist_add(&rows, v[j].row);
		run = v[j].run;
	}
	fprintf(f, "\n== %s: %s%s%s%s\n", sc, what ? what : "medians [p10-p90]",
		ref ? "; x = median / median of '" : "", ref ? ref : "", ref ? "'" : "");
	fprintf(f, "  %-34s", "row");
	w = xmalloc(metrics.n * sizeof(*w));
	for (size_t m = 0; m < metrics.n; m++) {
		const struct res *any = find_in(v, n, sc, NULL, metrics.v[m]);
		char *h = xasprintf("%s (%s)", metrics.v[m], any->unit);

		w[m] = strlen(h) > 26 ? (int)strlen(h) : 26; /* a long header widens its column */
		fprintf(f, " %*s", w[m], h);
		free(h);
		if (ref)
			fprintf(f, " %6s", "x");
	}
	fputc('\n', f);
	for (size_t r = 0; r < rows.n; r++) {
		fprintf(f, "  %-34s", rows.v[r]);
		for (size_t m = 0; m < metrics.n; m++)
			print_cell(f, w[m], find_in(v, n, sc, rows.v[r], metrics.v[m]),
				   ref ? find_in(v, n, sc, ref, metrics.v[m]) : NULL, ref != NULL);
		fputc('\n', f);
	}
	for (size_t k = 0; k < nnotes && !what; k++)
		if (!strcmp(notes[k].scenario, sc) && notes[k].run == run)
			fprintf(f, "  %s\n", notes[k].text);
	free(w);
	strlist_free(&metrics);
	strlist_free(&rows);
}

void print_tables(FILE *f, size_t from)
{
	struct strlist scs = {0};

	result_scenarios(from, &scs);
	for (size_t i = 0; i < scs.n; i++)
		print_table(f, res + from, nres - from, scs.v[i], NULL);
	strlist_free(&scs);
	fflush(f);
}

/* The spread table of @sc over @runs runs: per row and metric, the median
 * of the run medians [min-max]. */
static void spread_table(FILE *f, const char *sc, unsigned runs)
{
	char *what = xasprintf("spread of the medians over %u runs: median of the run medians [min-max]", runs);
	struct res *v = NULL;
	double *m = NULL;
	size_t n = 0, cap = 0, capm = 0;

	for (size_t i = 0; i < nres; i++) {
		size_t k = 0;

		if (strcmp(res[i].scenario, sc) || find_in(v, n, sc, res[i].row, res[i].metric))
			continue;
		for (size_t j = i; j < nres; j++) {
			if (strcmp(res[j].scenario, sc) || strcmp(res[j].row, res[i].row) ||
			    strcmp(res[j].metric, res[i].metric))
				continue;
			GROW(m, capm, k + 1);
			m[k++] = res[j].median;
		}
		GROW(v, cap, n + 1);
		v[n] = res[i];
		v[n].median = median(m, k);
		v[n].p10 = pct(m, k, 0);
		v[n++].p90 = pct(m, k, 100);
	}
	print_table(f, v, n, sc, what);
	fprintf(f, "  (each cell: the median of the %u runs' medians, [the smallest-the largest])\n", runs);
	free(m);
	free(v);
	free(what);
}

/* @row's kind: what follows its allocator's name, which ends at the first
 * comma outside parentheses ("kernel (mmap, THP)" is a name; ", 1 thread"
 * a kind, "" none); *@is_zpage: that name is zpage's ("zpage", or the
 * drop-in's "zpage-run"). */
static const char *kind_of(const char *row, bool *is_zpage)
{
	const char *c = row;
	int depth = 0;

	for (; *c && (*c != ',' || depth > 0); c++)
		depth += (*c == '(') - (*c == ')');
	*is_zpage = (c - row == 5 || (c - row == 9 && !strncmp(row + 5, "-run", 4))) && !strncmp(row, "zpage", 5);
	return c;
}

/* P(at least @k of @n fair coin flips come up heads): a one-sided sign test. */
static double sign_test(unsigned k, unsigned n)
{
	double p = 0;

	for (unsigned i = k; i <= n; i++)
		p += exp(lgamma(n + 1.0) - lgamma(i + 1.0) - lgamma(n - i + 1.0) - n * log(2.0));
	return p > 1 ? 1 : p;
}

/* One row of ratio_table(): @zr against @or run by run; nothing when fewer
 * than two runs have both. */
static void ratio_row(FILE *f, const char *sc, const struct res *first, unsigned runs, const char *zr, const char *or,
		      double *r, size_t w, bool *header)
{
	unsigned n = 0, better = 0, ties = 0;

	for (unsigned run = 0; run < runs; run++) {
		const struct res *a = NULL, *b = NULL;

		for (size_t i = 0; i < nres; i++) {
			if (res[i].run != run || strcmp(res[i].scenario, sc) || strcmp(res[i].metric, first->metric))
				continue;
			if (!strcmp(res[i].row, zr))
				a = &res[i];
			else if (!strcmp(res[i].row, or))
				b = &res[i];
		}
		if (!a || !b || !(a->median > 0) || !(b->median > 0))
			continue;
		r[n] = higher_is_better(first->unit) ? a->median / b->median : b->median / a->median;
		ties += r[n] == 1; /* neither better: out of the sign test's count */
		better += r[n] > 1;
		n++;
	}
	if (n < 2)
		return;
	if (!*header) {
		fprintf(f, "\n== %s: zpage against its peers, run by run over %u runs: %s (%s)\n", sc, runs,
			first->metric, higher_is_better(first->unit) ? "zpage / the other" : "the other / zpage");
		fprintf(f, "  %-*s %-26s %-25s %s\n", (int)w, "rows", "median [min-max] (x)", "zpage better in",
			"sign test p");
		*header = true;
	}
	{
		char *row = xasprintf("%s vs %s", zr, or);
		char cell[80], in[48];

		snprintf(cell, sizeof(cell), "%.4g [%.4g-%.4g]", median(r, n), pct(r, n, 0), pct(r, n, 100));
		if (ties == n)
			snprintf(in, sizeof(in), "none: all %u tied", n);
		else if (ties)
			snprintf(in, sizeof(in), "%u of %u runs, %u tied", better, n - ties, ties);
		else
			snprintf(in, sizeof(in), "%u of %u runs", better, n);
		if (ties == n)
			fprintf(f, "  %-*s %-26s %-25s -\n", (int)w, row, cell, in);
		else
			fprintf(f, "  %-*s %-26s %-25s %.3g\n", (int)w, row, cell, in, sign_test(better, n - ties));
		free(row);
	}
}

/*
 * With --repeat: zpage's rows against their peers, run by run, on the
 * table's first metric.  A zpage row's peers: every row of its kind (the
 * same text after the allocator's name: "glibc, 1 thread" for "zpage, 1
 * thread"); the counterpart the scenario names for it (fault's "zpage,
 * fresh" against "kernel, new THP mapping"); and the scenario's reference
 * row when that is zpage's own (seed's "zpage, reported: clears again",
 * reuse's "zpage, warmth off", scale's smallest arena).  A run's ratio is
 * zpage's median over the other's, turned so that above 1 is zpage's row
 * better (the other's over zpage's for a time); printed: the median of
 * the runs' ratios [the smallest-the largest], in how many runs zpage's
 * row was better, and the one-sided sign test's p of that many or more by
 * chance (a run where the two are equal, as medians rounded to the
 * clock's grain can be, counts as tied and is left out of the sign test's
 * count, as the test does; its smallest p is 2^-n, so p < 0.05 takes 5
 * untied runs or more).  The spread table's medians come from different
 * runs row by row; these ratios pair each run's two rows, which ran
 * interleaved.
 */
static void ratio_table(FILE *f, const char *sc, unsigned runs)
{
	const struct res *first = NULL;
	struct strlist rows = {0};
	double *r = xmalloc(runs * sizeof(*r));
	const char *ref = reference_of(sc);
	bool header = false, ref_zp = false;
	size_t w = 0;

	for (size_t i = 0; i < nres && !first; i++)
		if (!strcmp(res[i].scenario, sc))
			first = &res[i];
	if (!first) {
		free(r);
		return;
	}
	for (size_t i = 0; i < nres; i++)
		if (!strcmp(res[i].scenario, sc) && !strcmp(res[i].metric, first->metric))
			strlist_add(&rows, res[i].row);
	for (size_t i = 0; i < rows.n; i++) /* the label column: the longest "zpage... / other..." */
		if (strlen(rows.v[i]) > w)
			w = strlen(rows.v[i]);
	w = 2 * w + 4;
	if (ref)
		kind_of(ref, &ref_zp);
	for (size_t z = 0; z < rows.n; z++) {
		bool zp, op, kin = false;
		const char *kind = kind_of(rows.v[z], &zp), *cp;

		if (!zp)
			continue;
		cp = counterpart_of(sc, rows.v[z]);
		for (size_t o = 0; o < rows.n; o++) {
			if (o == z || strcmp(kind_of(rows.v[o], &op), kind) || op)
				continue;
			ratio_row(f, sc, first, runs, rows.v[z], rows.v[o], r, w, &header);
			kin |= cp && !strcmp(cp, rows.v[o]);
		}
		if (cp && !kin && strcmp(cp, rows.v[z]))
			ratio_row(f, sc, first, runs, rows.v[z], cp, r, w, &header);
		if (ref_zp && strcmp(ref, rows.v[z]) && !(cp && !strcmp(cp, ref)))
			ratio_row(f, sc, first, runs, rows.v[z], ref, r, w, &header);
	}
	if (header)
		fprintf(f, "  (above 1: zpage's row better in that run; p: the chance of being better in that many runs or "
			   "more if neither were)\n");
	strlist_free(&rows);
	free(r);
}

void print_spread(FILE *f, unsigned runs)
{
	struct strlist scs = {0};

	result_scenarios(0, &scs);
	for (size_t s = 0; s < scs.n; s++) {
		spread_table(f, scs.v[s], runs);
		ratio_table(f, scs.v[s], runs);
	}
	strlist_free(&scs);
	fflush(f);
}

void print_scenario(FILE *f, const char *sc, unsigned runs)
{
	size_t n0 = 0;

	while (n0 < nres && !res[n0].run)
		n0++;
	print_table(f, res, n0, sc, NULL);
	if (runs > 1) {
		spread_table(f, sc, runs);
		ratio_table(f, sc, runs);
	}
}

/* ---- CSV and JSON ---- */

static FILE *open_output(const char *option, const char *path)
{
	FILE *f = fopen(path, "w");

	if (!f)
		die("%s %s: %s", option, path, strerror(errno));
	return f;
}

static void close_output(FILE *f, const char *option, const char *path)
{
	if (ferror(f) | fclose(f))
		die("%s %s: write error", option, path);
}

/* RFC 4180: every text field quoted, a quote inside doubled; commas and
 * line breaks inside the quotes need nothing more. */
static void csv_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", f);
		else if (*p == '\t')
			fputs("\\t", f);
		else if (*p == '\r')
			fputs("\\r", f);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

static void json_number(FILE *f, double v)
{
	if (isfinite(v))
		fprintf(f, "%.6g", v);
	else
		fputs("null", f);
}

void write_csv(const char *path)
{
	FILE *f = open_output("--csv", path);

	fprintf(f, "scenario,row,metric,unit,median,p10,p90,samples,run\n");
	for (size_t i = 0; i < env_count(); i++) {
		csv_string(f, "environment");
		fputc(',', f);
		csv_string(f, env_at(i)->key);
		fputc(',', f);
		csv_string(f, env_at(i)->value);
		fputs(",,,,,,\n", f);
	}
	for (size_t i = 0; i < nres; i++) {
		const char *text[] = {res[i].scenario, res[i].row, res[i].metric, res[i].unit};

		for (size_t k = 0; k < 4; k++) {
			csv_string(f, text[k]);
			fputc(',', f);
		}
		fprintf(f, "%.6g,%.6g,%.6g,%zu,%u\n", res[i].median, res[i].p10, res[i].p90, res[i].n, res[i].run + 1);
	}
	close_output(f, "--csv", path);
}

/* The samples "samples_kept" describes, comma-separated. */
static void json_samples(FILE *f, const struct res *r)
{
	double *v = NULL;

	if (r->n > SAMPLES_KEPT) {
		v = xmemdup(r->samples, r->n * sizeof(double));
		sort_doubles(v, r->n);
	}
	for (size_t k = 0; k < r->n && k < SAMPLES_KEPT; k++) {
		if (k)
			fputs(", ", f);
		json_number(f, v ? v[(size_t)((double)k * (r->n - 1) / (SAMPLES_KEPT - 1) + 0.5)] : r->samples[k]);
	}
	free(v);
}

void write_json(const char *path)
{
	static const char *const keys[] = {"scenario", "row", "metric", "unit", "median", "p10", "p90"};
	FILE *f = open_output("--json", path);
	unsigned runs = 0;

	fprintf(f, "{\"environment\": {");
	for (size_t i = 0; i < env_count(); i++) {
		fprintf(f, "%s\n  ", i ? "," : "");
		json_string(f, env_at(i)->key);
		fputs(": ", f);
		if (env_at(i)->number)
			fputs(env_at(i)->value, f);
		else
			json_string(f, env_at(i)->value);
	}
	for (size_t i = 0; i < nres; i++)
		runs = res[i].run + 1 > runs ? res[i].run + 1 : runs;
	fprintf(f, "\n},\n\"runs\": %u,\n\"samples_kept\": \"every sample up to %d (in the order measured), "
		   "else %d order statistics evenly spaced from the smallest to the largest; n: samples measured\",\n"
		   "\"results\": [\n",
		runs, SAMPLES_KEPT, SAMPLES_KEPT);
	for (size_t i = 0; i < nres; i++) {
		const char *text[] = {res[i].scenario, res[i].row, res[i].metric, res[i].unit};
		const double num[] = {res[i].median, res[i].p10, res[i].p90};

		fputs("  {", f);
		for (size_t k = 0; k < 7; k++) {
			fprintf(f, "%s\"%s\": ", k ? ", " : "", keys[k]);
			if (k < 4)
				json_string(f, text[k]);
			else
				json_number(f, num[k - 4]);
		}
		fprintf(f, ", \"n\": %zu, \"run\": %u, \"samples\": [", res[i].n, res[i].run + 1);
		json_samples(f, &res[i]);
		fprintf(f, "]}%s\n", i + 1 < nres ? "," : "");
	}
	fprintf(f, "]}\n");
	close_output(f, "--json", path);
}
