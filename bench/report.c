/* SPDX-License-Identifier: MIT */
/*
 * --report DIR: DIR/index.md, for an issue tracker or a mailing list, the
 * charts beside it in DIR (relative links, so the directory is the whole
 * report):
 *   the command line, the date and how to read the tables;
 *   the environment (env.c), as a table;
 *   per scenario, its table (the first run's; with --repeat, then the
 *   spread of the run medians), its charts inline (drawn into DIR as
 *   --plot DIR draws them: PNG where gnuplot has pngcairo, else SVG), and
 *   a reading generated from the numbers, one line per metric (ratios
 *   aside), never only the rows that flatter zpage:
 *   - a reference row that is a peer's: each zpage row against its
 *     counterpart ("zpage, 2 threads" against "glibc, 2 threads" when the
 *     reference is "glibc, 1 thread") and the best row of the same kind
 *     (", 2 threads"), or, without counterparts, zpage's best AND worst
 *     rows against the reference;
 *   - no reference row: zpage's best and worst rows against the best of
 *     the others;
 *   - a reference row that is zpage's own (seed, scale): every other row
 *     as a ratio to it;
 *   with the ratio of the medians, whether the p10-p90 ranges overlap,
 *   and, but for counterparts, the best row of all when no line named it.
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

/* zpage's row that matches the reference row @ref ("zpage, 1 thread" for
 * "glibc, 1 thread"), or NULL. */
static const struct res *counterpart(const char *sc, const char *ref, const char *metric)
{
	const char *rest = ref ? strchr(ref, ',') : NULL;
	char *row = rest ? xasprintf("zpage%s", rest) : NULL;
	const struct res *r = row ? find_result(0, sc, row, metric) : NULL;

	free(row);
	return r;
}

static bool usable(const struct res *r)
{
	return r && r->median > 0;
}

/* "`row` (v unit) is k x better/worse than": @r against @o. */
static void against(FILE *f, const struct res *r, const struct res *o)
{
	char a[32];
	double k = r->median > o->median ? r->median / o->median : o->median / r->median;

	fmt_val(a, sizeof(a), r->median);
	fprintf(f, "`%s` (%s %s) ", r->row, a, r->unit);
	if (k < 1.01)
		fprintf(f, "is within 1%% of");
	else
		fprintf(f, "is %.3gx %s than", k, said(r->unit, better(r, o)));
	fprintf(f, " it");
	if (r->n > 1 && o->n > 1)
		fprintf(f, " (p10-p90 %s)", r->p10 <= o->p90 && o->p10 <= r->p90 ? "overlapping" : "apart");
}

/* One line of reading on @metric of @sc (first run), under a heading when
 * it is the first (*@lines 0); see the top of the file.  None when a side
 * has no row or no positive median. */
static void reading(FILE *f, const char *sc, const char *metric, int *lines)
{
	const char *ref = reference_of(sc);
	const struct res *other = ref ? find_result(0, sc, ref, metric) : NULL;
	const struct res *zp = ref && !is_zpage(ref) ? counterpart(sc, ref, metric) : NULL;
	const struct res *best = NULL, *zbest = NULL, *zworst = NULL;
	bool own = ref && is_zpage(ref); /* the reference is zpage's own row */
	char b[32];

	for (size_t i = 0; i < results_count(); i++) {
		const struct res *r = result_at(i);

		if (r->run || strcmp(r->scenario, sc) || strcmp(r->metric, metric) || !usable(r))
			continue;
		if (!best || better(r, best))
			best = r;
		if (is_zpage(r->row)) {
			if (!zbest || better(r, zbest))
				zbest = r;
			if (!zworst || better(zworst, r))
				zworst = r;
		} else if (!ref && (!other || better(r, other)))
			other = r;
	}
	if (!usable(other) || !zbest)
		return;
	if (!(*lines)++)
		fprintf(f, "\nReading, generated from the first run's numbers:\n\n");
	fmt_val(b, sizeof(b), other->median);
	fprintf(f, "- %s, against %s `%s` (%s %s): ", metric, ref ? "the reference row" : "the best of the others",
		other->row, b, other->unit);
	if (own) {
		int said_one = 0;

		for (size_t i = 0; i < results_count(); i++) {
			const struct res *r = result_at(i);

			if (r->run || r == other || strcmp(r->scenario, sc) || strcmp(r->metric, metric) ||
			    !usable(r))
				continue;
			fprintf(f, "%s`%s` %.3gx", said_one++ ? ", " : "", r->row, r->median / other->median);
		}
		fprintf(f, " (ratios of the medians)");
	} else if (usable(zp)) {
		/* every "zpage, X" against "<peer>, X", and the best of the ", X" rows */
		size_t plen = (size_t)(strchr(ref, ',') - ref);
		int said_one = 0;

		for (size_t i = 0; i < results_count(); i++) {
			const struct res *r = result_at(i), *o, *top = NULL;
			char *peer;

			if (r->run || strcmp(r->scenario, sc) || strcmp(r->metric, metric) || !usable(r) ||
			    strncmp(r->row, "zpage,", 6))
				continue;
			peer = xasprintf("%.*s%s", (int)plen, ref, r->row + 5);
			o = find_result(0, sc, peer, metric);
			free(peer);
			if (!usable(o))
				continue;
			for (size_t j = 0; j < results_count(); j++) {
				const struct res *t = result_at(j);
				size_t tl = strlen(t->row), rl = strlen(r->row + 5);

				if (!t->run && !strcmp(t->scenario, sc) && !strcmp(t->metric, metric) && usable(t) &&
				    tl >= rl && !strcmp(t->row + tl - rl, r->row + 5) && (!top || better(t, top)))
					top = t;
			}
			if (said_one++) {
				fmt_val(b, sizeof(b), o->median);
				fprintf(f, "; against `%s` (%s %s): ", o->row, b, o->unit);
			}
			against(f, r, o);
			if (top && top != r && top != o) {
				fmt_val(b, sizeof(b), top->median);
				fprintf(f, ", the best of its kind being `%s` (%s %s)", top->row, b, top->unit);
			}
		}
		best = zp;
	} else {
		fprintf(f, "zpage's best row ");
		against(f, zbest, other);
		if (zworst != zbest) {
			fprintf(f, "; its worst row ");
			against(f, zworst, other);
		}
		zp = zbest;
	}
	if (best != other && best != zp && best != zbest && !own) {
		fmt_val(b, sizeof(b), best->median);
		fprintf(f, "; the best row of all is `%s` (%s %s)", best->row, b, best->unit);
	}
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
			   "(their median [min-max]).",
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
