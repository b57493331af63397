/* SPDX-License-Identifier: MIT */
/*
 * --report DIR: DIR/index.md, for an issue tracker or a mailing list, the
 * charts beside it in DIR (relative links, so the directory is the whole
 * report):
 *   the command line, the date and how to read the tables;
 *   the environment (env.c), as a table;
 *   per scenario, its table (the first run's; with --repeat, then the
 *   spread of the run medians and zpage against its peers run by run),
 *   its charts inline (drawn into DIR as
 *   --plot DIR draws them: PNG where gnuplot has pngcairo, else SVG), and
 *   a reading generated from the numbers, one line per metric (ratios
 *   aside), which reads every zpage row, never only the flattering ones:
 *   - a reference row that is zpage's own (seed, scale, reuse): every other row
 *     as a ratio to it, and which way is better;
 *   - otherwise each zpage row against the row the scenario named its
 *     counterpart (counterpart(): fault's "zpage, fresh" against "kernel,
 *     new THP mapping"), else the row of its kind (the same text after
 *     the first comma: "zpage, 2 threads" against "glibc, 2 threads" when
 *     the reference is "glibc, 1 thread", else the best other row of that
 *     kind), else the reference row, else the best of the other rows;
 *     with the ratio of the medians (none where a median is 0: both
 *     values are given), whether the p10-p90 ranges overlap, and the best
 *     row of the kind when it is neither of the two;
 *   - and, ending the line, the best row of all when no clause named it.
 * The floor is never read as a row to beat or the best of anything:
 * churn's "floor" rows (--churn-floor), an estimate of the loop's cost
 * with no allocator, not a peer.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "results.h"

static bool is_zpage(const char *row)
{
	return !strncmp(row, "zpage", 5) || strstr(row, "ZP_");
}

static bool is_floor(const char *row)
{
	return !strncmp(row, "floor,", 6);
}

static bool better(const struct res *a, const struct res *b)
{
	return higher_is_better(a->unit) ? a->median > b->median : a->median < b->median;
}

/* How @unit's better (@up) or worse way is said. */
static const char *said(const char *unit, bool up)
{
	static const char *const times[] = {"ns", "us", "ms", "s"};

	for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++)
		if (!strcmp(unit, times[i]))
			return up ? "faster" : "slower";
	if (higher_is_better(unit))
		return up ? "higher" : "lower";
	return up ? "lower" : "higher";
}

/* The text after the row's first comma (", 2 threads"), or NULL. */
static const char *kind(const char *row)
{
	return strchr(row, ',');
}

static bool same_kind(const char *a, const char *b)
{
	return kind(a) && kind(b) && !strcmp(kind(a), kind(b));
}

static bool counts(const struct res *r, const char *sc, const char *metric)
{
	return !r->run && !strcmp(r->scenario, sc) && !strcmp(r->metric, metric) && r->median >= 0;
}

/* @r against @o: "`row` (v unit) is k x better/worse than `orow` (v unit)". */
static void against(FILE *f, const struct res *r, const struct res *o)
{
	char a[32], b[32];
	double k = r->median > o->median ? r->median / o->median : o->median / r->median;

	fmt_val(a, sizeof(a), r->median);
	fmt_val(b, sizeof(b), o->median);
	fprintf(f, "`%s` (%s %s) ", r->row, a, r->unit);
	if (!(r->median > 0) || !(o->median > 0))
		fprintf(f, "against");
	else if (k < 1.01)
		fprintf(f, "is within 1%% of");
	else
		fprintf(f, "is %.*gx %s than", k >= 1000 ? 9 : 3, k, said(r->unit, better(r, o)));
	fprintf(f, " `%s` (%s %s)", o->row, b, o->unit);
	if (r->n > 1 && o->n > 1)
		fprintf(f, " (p10-p90 %s)", r->p10 <= o->p90 && o->p10 <= r->p90 ? "overlapping" : "apart");
}

/* The best row of @sc's @metric: of @like's kind unless @like is NULL,
 * zpage's rows left out when @others; NULL when there is none. */
static const struct res *best_row(const char *sc, const char *metric, const char *like, bool others)
{
	const struct res *o = NULL;

	for (size_t i = 0; i < results_count(); i++) {
		const struct res *t = result_at(i);

		if (counts(t, sc, metric) && !is_floor(t->row) && !(others && is_zpage(t->row)) &&
		    (!like || same_kind(t->row, like)) && (!o || better(t, o)))
			o = t;
	}
	return o;
}

/* The row that zpage's row @r of @sc is read against; see the top. */
static const struct res *versus(const char *sc, const char *metric, const char *ref, const struct res *r)
{
	const char *cp = counterpart_of(sc, r->row); /* set by the scenario */
	const struct res *o = cp ? find_result(0, sc, cp, metric) : NULL;

	if (o && !counts(o, sc, metric))
		o = NULL;
	if (!o && ref && kind(r->row) && kind(ref)) { /* the reference's peer, of @r's kind */
		char *peer = xasprintf("%.*s%s", (int)(kind(ref) - ref), ref, kind(r->row));

		o = find_result(0, sc, peer, metric);
		free(peer);
		if (o && (!counts(o, sc, metric) || is_zpage(o->row)))
			o = NULL;
	}
	if (!o && kind(r->row))
		o = best_row(sc, metric, r->row, true);
	if (!o && ref)
		o = find_result(0, sc, ref, metric);
	if (!o || !counts(o, sc, metric))
		o = best_row(sc, metric, NULL, true);
	return o;
}

/* One line of reading on @metric of @sc (first run), under a heading when
 * it is the first (*@lines 0); see the top of the file. */
static void reading(FILE *f, const char *sc, const char *metric, int *lines)
{
	const char *ref = reference_of(sc);
	int clauses = 0;
	char b[32];

	if (ref && is_zpage(ref)) {
		const struct res *o = find_result(0, sc, ref, metric);

		if (!o || !(o->median > 0))
			return;
		for (size_t i = 0; i < results_count(); i++) {
			const struct res *r = result_at(i);

			if (r == o || !counts(r, sc, metric))
				continue;
			if (!clauses++) {
				if (!(*lines)++)
					fprintf(f, "\nReading, generated from the first run's numbers:\n\n");
				fmt_val(b, sizeof(b), o->median);
				fprintf(f, "- %s, each row / `%s` (%s %s), %s is better: ", metric, o->row, b, o->unit,
					higher_is_better(o->unit) ? "higher" : "lower");
			} else {
				fprintf(f, ", ");
			}
			fprintf(f, "`%s` %.*gx", r->row, r->median >= 1000 * o->median ? 9 : 3, r->median / o->median);
		}
		if (clauses)
			fprintf(f, ".\n");
		return;
	}
	const struct res *best = best_row(sc, metric, NULL, false);
	bool named = false; /* a clause named the best row of all */

	for (size_t i = 0; i < results_count(); i++) {
		const struct res *r = result_at(i), *o, *top;

		if (!counts(r, sc, metric) || !is_zpage(r->row) || !(o = versus(sc, metric, ref, r)))
			continue;
		if (!(*lines)++)
			fprintf(f, "\nReading, generated from the first run's numbers:\n\n");
		fprintf(f, clauses++ ? "; " : "- %s: ", metric);
		against(f, r, o);
		top = kind(r->row) ? best_row(sc, metric, r->row, false) : NULL;
		if (top && top != r && top != o) {
			fmt_val(b, sizeof(b), top->median);
			fprintf(f, ", the best of its kind `%s` (%s %s)", top->row, b, top->unit);
		}
		named |= best == r || best == o || best == top;
	}
	if (clauses && best && !named) {
		fmt_val(b, sizeof(b), best->median);
		fprintf(f, "; the best row of all is `%s` (%s %s)", best->row, b, best->unit);
	}
	if (clauses)
		fprintf(f, ".\n");
}

/* The charts of @sc that plot() drew into @dir, as inline images. */
static void charts(FILE *f, const char *dir, const char *sc)
{
	static const char *const suffixes[] = {"", "_cdf", "_series"}, *const exts[] = {".png", ".svg"};

	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		char *name = chart_name(sc, suffixes[i]);

		for (size_t k = 0; k < 2; k++) {
			char *path = xasprintf("%s/%s%s", dir, name, exts[k]);
			bool there = !access(path, R_OK);

			free(path);
			if (there) {
				fprintf(f, "\n![%s%s](%s%s)\n", sc, suffixes[i], name, exts[k]);
				break;
			}
		}
		free(name);
	}
}

/* A markdown table cell: '|' escaped, a line break a space. */
static void md_cell(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '|')
			fputc('\\', f);
		fputc(*s == '\n' ? ' ' : *s, f);
	}
}

void write_report(const char *dir, unsigned runs)
{
	struct strlist scs = {0};
	char *path;
	FILE *f;
	int drawn;

	if (mkdir(dir, 0755) && errno != EEXIST)
		die("--report %s: %s", dir, strerror(errno));
	drawn = plot(dir);
	path = xasprintf("%s/index.md", dir);
	if (!(f = fopen(path, "w")))
		die("--report %s: %s", path, strerror(errno));
	fprintf(f, "# zpage-bench report\n\n`%s`, %s.", env_value("command"), env_value("date"));
	fprintf(f, " Every figure is a median with its 10th-90th percentile spread [p10-p90]; the `x` columns "
		   "divide by the scenario's reference row of the same run. ");
	if (runs > 1)
		fprintf(f, "The tables are the first of %u runs, each followed by the spread of the %u runs' medians "
			   "(their median [min-max]) and by zpage against its peers, run by run.",
			runs, runs);
	else
		fprintf(f, "The tables come from one run.");
	fprintf(f, "%s\n\n## Environment\n\n| field | value |\n|---|---|\n",
		drawn ? "" : " No charts: gnuplot is not installed, or drew none.");
	for (size_t i = 0; i < env_count(); i++) {
		fprintf(f, "| %s | ", env_at(i)->key);
		md_cell(f, env_at(i)->value);
		fprintf(f, " |\n");
	}
	result_scenarios(0, &scs);
	for (size_t s = 0; s < scs.n; s++) {
		struct strlist metrics = {0};
		int lines = 0;

		fprintf(f, "\n## %s\n\n```text", scs.v[s]);
		print_scenario(f, scs.v[s], runs);
		fprintf(f, "```\n");
		charts(f, dir, scs.v[s]);
		for (size_t i = 0; i < results_count(); i++) /* not the ratios: they have their own columns */
			if (!strcmp(result_at(i)->scenario, scs.v[s]) && strcmp(result_at(i)->unit, "x") &&
			    strcmp(result_at(i)->unit, "paired"))
				strlist_add(&metrics, result_at(i)->metric);
		for (size_t m = 0; m < metrics.n; m++)
			reading(f, scs.v[s], metrics.v[m], &lines);
		strlist_free(&metrics);
	}
	strlist_free(&scs);
	if (ferror(f) | fclose(f))
		die("--report %s: write error", path);
	printf("\nreport written to %s\n", path);
	free(path);
}
