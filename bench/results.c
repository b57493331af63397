/* SPDX-License-Identifier: MIT */
/*
 * zpage-bench results: every metric of every row (median, p10, p90 and
 * the samples), the series of the line charts, the notes and reference
 * rows of each scenario; and the three ways they are written out: a text
 * table per scenario, CSV (RFC 4180 quoting) and JSON (every string
 * escaped, a number that is not finite written as null).
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

static struct res *res;
static size_t nres, capres;
static struct ser *sers;
static size_t nsers, capsers;
static struct {
	char *scenario, *text;
} * notes;
static size_t nnotes, capnotes;
static struct {
	char *scenario, *row;
} * refs;
static size_t nrefs, caprefs;

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
	};
}

void note(const char *scenario, const char *fmt, ...)
{
	va_list ap;

	GROW(notes, capnotes, nnotes + 1);
	notes[nnotes].scenario = xstrdup(scenario);
	va_start(ap, fmt);
	notes[nnotes++].text = xvasprintf(fmt, ap);
	va_end(ap);
}

void reference(const char *scenario, const char *row)
{
	GROW(refs, caprefs, nrefs + 1);
	refs[nrefs].scenario = xstrdup(scenario);
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
		if (!strcmp(refs[i].scenario, sc))
			return refs[i].row;
	return NULL;
}

const struct res *find_result(size_t from, const char *sc, const char *row, const char *metric)
{
	for (size_t i = from; i < nres; i++)
		if (!strcmp(res[i].scenario, sc) && (!row || !strcmp(res[i].row, row)) &&
		    (!metric || !strcmp(res[i].metric, metric)))
			return &res[i];
	return NULL;
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

static void print_table(FILE *f, size_t from, const char *sc)
{
	const char *ref = reference_of(sc);
	struct strlist metrics = {0}, rows = {0};
	int *w;

	for (size_t j = from; j < nres; j++) {
		if (strcmp(res[j].scenario, sc))
			continue;
		strlist_add(&metrics, res[j].metric);
		strlist_add(&rows, res[j].row);
	}
	fprintf(f, "\n== %s: medians [p10-p90]%s%s%s\n", sc, ref ? "; x = median / median of '" : "", ref ? ref : "",
		ref ? "'" : "");
	fprintf(f, "  %-34s", "row");
	w = xmalloc(metrics.n * sizeof(*w));
	for (size_t m = 0; m < metrics.n; m++) {
		const struct res *any = find_result(from, sc, NULL, metrics.v[m]);
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
			print_cell(f, w[m], find_result(from, sc, rows.v[r], metrics.v[m]),
				   ref ? find_result(from, sc, ref, metrics.v[m]) : NULL, ref != NULL);
		fputc('\n', f);
	}
	for (size_t k = 0; k < nnotes; k++)
		if (!strcmp(notes[k].scenario, sc))
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
		print_table(f, from, scs.v[i]);
	strlist_free(&scs);
	fflush(f);
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

	fprintf(f, "scenario,row,metric,unit,median,p10,p90,samples\n");
	for (size_t i = 0; i < nres; i++) {
		const char *text[] = {res[i].scenario, res[i].row, res[i].metric, res[i].unit};

		for (size_t k = 0; k < 4; k++) {
			csv_string(f, text[k]);
			fputc(',', f);
		}
		fprintf(f, "%.6g,%.6g,%.6g,%zu\n", res[i].median, res[i].p10, res[i].p90, res[i].n);
	}
	close_output(f, "--csv", path);
}

void write_json(const char *path)
{
	static const char *const keys[] = {"scenario", "row", "metric", "unit", "median", "p10", "p90"};
	FILE *f = open_output("--json", path);

	fprintf(f, "{\"results\": [\n");
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
		fprintf(f, ", \"samples\": %zu}%s\n", res[i].n, i + 1 < nres ? "," : "");
	}
	fprintf(f, "]}\n");
	close_output(f, "--json", path);
}
