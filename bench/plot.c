/* SPDX-License-Identifier: MIT */
/*
 * zpage-bench charts.  Each chart is three files in the --plot directory:
 * NAME.dat (the numbers, tab-separated), NAME.gp (a gnuplot script that
 * reads NAME.dat) and NAME.svg, drawn by running `gnuplot NAME.gp` in that
 * directory; the script also draws NAME.png when gnuplot has the pngcairo
 * terminal.  `cd DIR && gnuplot NAME.gp` draws a chart again by hand.
 *
 *   NAME.svg         per scenario, its first metric: a horizontal bar per
 *                    row (name at the left, median printed at the end,
 *                    p10-p90 whiskers), coloured by family (zpage, the
 *                    kernel, other allocators, baselines); a log axis when
 *                    the medians span more than 50x; the title says
 *                    whether lower or higher is better
 *   NAME_cdf.svg     the latency distribution of every row, when the
 *                    scenario has a "latency..." metric of many samples
 *   NAME_series.svg  the scenario's series as lines (rss over time)
 *
 * With --repeat, the charts are those of the first run.
 *
 * Text from the results reaches gnuplot only as quoted strings in the
 * script (gp_str) or as fields of the data file (dat_str), never through a
 * shell.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "results.h"

#define WIDTH 1000

/* ---- colours: one per family of rows ---- */

enum family { FAM_ZPAGE, FAM_KERNEL, FAM_ALLOC, FAM_BASE, NR_FAMILIES };
static const struct {
	const char *name;
	unsigned rgb;
} families[NR_FAMILIES] = {
	[FAM_ZPAGE] = {"zpage", 0x1f5fbf},
	[FAM_KERNEL] = {"kernel (Linux)", 0xe07b00},
	[FAM_ALLOC] = {"other allocators", 0x2a9d8f},
	[FAM_BASE] = {"baseline", 0x9a9a9a},
};
/* lines of the other allocators need telling apart: one hue each */
static const unsigned peer_rgb[NR_PEERS] = {0x2a9d8f, 0xc0392b, 0x8e44ad, 0xb8860b};

static int peer_of(const char *row)
{
	for (int i = 0; i < NR_PEERS; i++)
		if (!strncmp(row, peers[i].name, strlen(peers[i].name)))
			return i;
	return -1;
}

static enum family family_of(const char *row)
{
	if (!strncmp(row, "zpage", 5) || strstr(row, "ZP_"))
		return FAM_ZPAGE;
	if (!strncmp(row, "kernel", 6) || !strncmp(row, "linux", 5))
		return FAM_KERNEL;
	return peer_of(row) >= 0 ? FAM_ALLOC : FAM_BASE;
}

static unsigned line_rgb(const char *row)
{
	int p = peer_of(row);

	return p >= 0 ? peer_rgb[p] : families[family_of(row)].rgb;
}

/* ---- files and gnuplot ---- */

/* A gnuplot single-quoted string: '' stands for a quote; a control
 * character (which would end the command) becomes a space. */
static void gp_str(FILE *g, const char *s)
{
	fputc('\'', g);
	for (; *s; s++) {
		if (*s == '\'')
			fputc('\'', g);
		fputc((unsigned char)*s < 0x20 ? ' ' : *s, g);
	}
	fputc('\'', g);
}

/* A text field of a tab-separated data file: no tab, line break or
 * double quote (which would start a quoted field) inside. */
static void dat_str(FILE *d, const char *s)
{
	for (; *s; s++)
		fputc((unsigned char)*s < 0x20 ? ' ' : *s == '"' ? '\'' : *s, d);
}

/* A chart's file name: the scenario with characters a shell or a file
 * system would trip on replaced by '_', and @suffix. */
char *chart_name(const char *sc, const char *suffix)
{
	char *s = xasprintf("%s%s", sc, suffix);

	for (char *p = s; *p; p++)
		if (!(('a' <= *p && *p <= 'z') || ('A' <= *p && *p <= 'Z') || ('0' <= *p && *p <= '9') ||
		      strchr("-_.+", *p)))
			*p = '_';
	return s;
}

static FILE *open_in(const char *dir, const char *name, const char *ext)
{
	char *path = xasprintf("%s/%s%s", dir, name, ext);
	FILE *f = fopen(path, "w");

	if (!f)
		die("--plot: %s: %s", path, strerror(errno));
	free(path);
	return f;
}

/* Run @argv (stdout and stderr to /dev/null) in @dir; its exit status,
 * or -1 when it could not run or was killed. */
static int spawn(const char *dir, char *const argv[])
{
	pid_t pid;
	int st;

	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		if (dir && chdir(dir))
			_exit(126);
		execvp(argv[0], argv);
		_exit(127);
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

struct chart {
	const char *dir;
	char *name; /* NAME of NAME.gp, NAME.dat, NAME.svg */
	FILE *g, *d;
	int height;
};

/* Open NAME.gp and NAME.dat and write the script's preamble: the SVG
 * terminal, the title (@line2 in smaller type under it). */
static void chart_open(struct chart *c, const char *dir, const char *sc, const char *suffix, int height,
		       const char *title, const char *line2)
{
	c->dir = dir;
	c->name = chart_name(sc, suffix);
	c->height = height;
	c->g = open_in(dir, c->name, ".gp");
	c->d = open_in(dir, c->name, ".dat");
	fprintf(c->g, "# zpage-bench: `gnuplot %s.gp` in this directory draws %s.svg from %s.dat\n", c->name, c->name,
		c->name);
	fprintf(c->g, "set encoding utf8\nset datafile separator \"\\t\"\n");
	fprintf(c->g, "set terminal svg size %d,%d noenhanced font 'sans,13' background rgb 'white'\n", WIDTH, height);
	fprintf(c->g, "set output '%s.svg'\nset title ", c->name);
	gp_str(c->g, title);
	fputs(" . \"\\n\" . ", c->g);
	gp_str(c->g, line2);
	fputs(" font ',15'\nset border 3 lc rgb '#444444'\nset tics nomirror\n", c->g);
}

/* Close the files, add the PNG when gnuplot has pngcairo, and draw the
 * chart; 1 when drawn. */
static int chart_close(struct chart *c)
{
	char *gp = xasprintf("%s.gp", c->name);
	char *argv[] = {"gnuplot", gp, NULL};
	int ok;

	fprintf(c->g,
		"# the same as PNG, when this gnuplot has the pngcairo terminal\n"
		"if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
		"    set terminal pngcairo size %d,%d noenhanced font 'sans,10' background rgb 'white'\n"
		"    set output '%s.png'\n"
		"    set title font ',11'\n"
		"    replot\n"
		"}\n"
		"unset output\n",
		WIDTH, c->height, c->name);
	if ((ferror(c->g) | fclose(c->g)) || (ferror(c->d) | fclose(c->d)))
		die("--plot: %s/%s: write error", c->dir, c->name);
	ok = spawn(c->dir, argv) == 0;
	if (!ok)
		fprintf(stderr, "zpage-bench: --plot: gnuplot failed on %s/%s (run it there to see why)\n", c->dir, gp);
	free(gp);
	free(c->name);
	return ok;
}

/* ---- bar charts ---- */

/* the legend on a line of its own under the x axis's label */
static void key_below(FILE *g)
{
	fprintf(g, "set bmargin 6\nset key at screen 0.5, character 0.6 center bottom horizontal reverse Left "
		   "samplen 1.5 width 1\n");
}

static void axis_label(FILE *g, const char *axis, const char *what, const char *unit, bool logscale)
{
	char *s = xasprintf("%s (%s%s)", what, unit, logscale ? ", log scale" : "");

	fprintf(g, "set %slabel ", axis);
	gp_str(g, s);
	fputc('\n', g);
	free(s);
}

/* The first metric of @sc: a bar per row. */
static int bar_chart(const char *dir, const char *sc)
{
	const struct res *first = find_result(0, sc, NULL, NULL), **rows = NULL;
	size_t n = 0, cap = 0;
	double lo = 0, hi = 0, end = 0, xmin = 0, xmax, base;
	bool spread = false, fam[NR_FAMILIES] = {false};
	struct chart c;

	for (size_t i = 0; i < results_count(); i++) {
		const struct res *r = result_at(i);

		if (r->run || strcmp(r->scenario, sc) || strcmp(r->metric, first->metric))
			continue;
		GROW(rows, cap, n + 1);
		rows[n++] = r;
		if (r->median > 0 && (!lo || r->median < lo))
			lo = r->median;
		hi = fmax(hi, r->median);
		end = fmax(end, fmax(r->median, r->p90));
		xmin = fmin(xmin, r->p10);
		spread |= r->n > 1;
		fam[family_of(r->row)] = true;
	}
	/* medians spanning more than 50x: a log axis, the bars starting at
	 * the power of ten below the smallest median */
	bool logx = lo > 0 && hi / lo > 50;
	if (logx)
		xmin = pow(10, floor(log10(lo)));
	base = logx ? xmin : 0;
	/* room at the right for the printed medians */
	xmax = logx ? pow(10, log10(end) + 0.25 * (log10(end) - log10(xmin))) : end > 0 ? end * 1.25 : 1;

	char *title = xasprintf("%s: %s (%s) - %s is better", sc, first->metric, first->unit,
				higher_is_better(first->unit) ? "higher" : "lower");
	chart_open(&c, dir, sc, "", 200 + 38 * (int)n, title,
		   spread ? "bar: median; whisker: 10th to 90th percentile" : "one sample per row");
	free(title);
	for (size_t i = 0; i < n; i++) {
		const struct res *r = rows[i];
		double bar = logx ? fmax(r->median, xmin) : r->median, wlo = fmax(r->p10, xmin),
		       whi = fmax(r->p90, bar);
		char val[32];

		fmt_val(val, sizeof(val), r->median);
		fprintf(c.d, "%zu\t%.9g\t%.9g\t%.9g\t%s\t%u\t", i, bar, wlo, whi, val, families[family_of(r->row)].rgb);
		dat_str(c.d, r->row);
		fputc('\n', c.d);
	}
	axis_label(c.g, "x", first->metric, first->unit, logx);
	fprintf(c.g, "set yrange [%zu - 0.4:-0.6]\nset ytics scale 0\nset xrange [%.9g:%.9g]\n", n, xmin, xmax);
	fprintf(c.g, "%s\nset grid xtics lc rgb '#dddddd'\nset style fill solid 0.9 noborder\n",
		logx ? "set logscale x" : "unset logscale x");
	key_below(c.g);
	fprintf(c.g,
		"plot '%s.dat' using 2:1:(%.9g):2:($1-0.35):($1+0.35):6:ytic(7) with boxxyerror "
		"lc rgb variable notitle, \\\n",
		c.name, base);
	if (spread)
		fprintf(c.g, "  '' using 2:1:3:4 with xerrorbars pt 7 ps 0.3 lw 1.5 lc rgb '#222222' notitle, \\\n");
	fprintf(c.g, "  '' using 4:1:5 with labels left offset char 0.7,0 notitle");
	for (int f = 0; f < NR_FAMILIES; f++)
		if (fam[f])
			fprintf(c.g, ", \\\n  keyentry with boxes fc rgb '#%06x' title '%s'", families[f].rgb,
				families[f].name);
	fputc('\n', c.g);
	free(rows);
	return chart_close(&c);
}

/* ---- line charts: latency CDFs, series ---- */

/* plot every block of the data file (index k: @names[k]) as a line, in the
 * colour of its row; dashed for a baseline, and for a row whose allocator
 * was seen before (the same allocator with more threads) */
static void plot_lines(struct chart *c, const char *const *names, size_t n, const char *with)
{
	fprintf(c->g, "set grid lc rgb '#dddddd'\nplot ");
	for (size_t k = 0; k < n; k++) {
		size_t dt = family_of(names[k]) == FAM_BASE ? 2 : 1;

		for (size_t j = 0; j < k; j++)
			dt += peer_of(names[j]) == peer_of(names[k]) && family_of(names[j]) == family_of(names[k]);
		fprintf(c->g, "%s'%s.dat' index %zu using 1:2 with %s lw 2 dt %zu lc rgb '#%06x' title ",
			k ? ", \\\n  " : "", c->name, k, with, dt, line_rgb(names[k]));
		gp_str(c->g, names[k]);
	}
	fputc('\n', c->g);
}

/* The latency distributions of @sc's rows, when it has a "latency" metric
 * with more than 100 samples. */
static int cdf_chart(const char *dir, const char *sc)
{
	const struct res *lm = NULL;
	const char **names = NULL;
	size_t n = 0, cap = 0;
	struct chart c;

	for (size_t i = 0; i < results_count() && !lm; i++) {
		const struct res *r = result_at(i);

		if (!strcmp(r->scenario, sc) && !strncmp(r->metric, "latency", 7) && r->n > 100)
			lm = r;
	}
	if (!lm)
		return 0;
	char *title = xasprintf("%s: %s per call, cumulative - further left is better", sc, lm->metric);
	chart_open(&c, dir, sc, "_cdf", 520, title, "fraction of calls that took at most x; log x axis");
	free(title);
	for (size_t i = 0; i < results_count(); i++) {
		const struct res *r = result_at(i);

		if (r->run || strcmp(r->scenario, sc) || strcmp(r->metric, lm->metric))
			continue;
		double *v = xmemdup(r->samples, r->n * sizeof(double));
		size_t step = r->n > 2000 ? r->n / 2000 : 1;

		sort_doubles(v, r->n);
		for (size_t k = 0; k < r->n; k += step)
			fprintf(c.d, "%g\t%g\n", v[k] > 0 ? v[k] : 1, (double)(k + 1) / r->n);
		fputs("\n\n", c.d);
		free(v);
		GROW(names, cap, n + 1);
		names[n++] = r->row;
	}
	axis_label(c.g, "x", lm->metric, lm->unit, true);
	fprintf(c.g, "set ylabel 'fraction of calls'\nset logscale x\nset format x '%%.0f'\nset yrange [0:1]\n"
		     "set ytics 0.1\nset key outside right top vertical spacing 1.3\n");
	/* the median and the tail, marked where no curve is (left of them) */
	for (int k = 0; k < 2; k++)
		fprintf(c.g,
			"set arrow from graph 0, first %g to graph 1, first %g nohead dt 3 lc rgb '#777777'\n"
			"set label '%s' at graph 0.01, first %g offset 0,-0.6 tc rgb '#555555'\n",
			k ? 0.99 : 0.5, k ? 0.99 : 0.5, k ? "p99" : "p50", k ? 0.99 : 0.5);
	plot_lines(&c, names, n, "lines");
	free(names);
	return chart_close(&c);
}

/* The series of the scenario of series @i, the first of its scenario. */
static int series_chart(const char *dir, size_t i)
{
	const struct ser *s0 = series_at(i);
	const struct res *r = find_result(0, s0->scenario, NULL, NULL);
	const char **names = NULL;
	size_t n = 0, cap = 0;
	double top = 0;
	struct chart c;

	const char *better = !r ? "" : higher_is_better(r->unit) ? " - higher is better" : " - lower is better";
	char *title = xasprintf("%s: %s%s", s0->scenario, s0->ylabel, better);
	char *line2 = xasprintf("against %s; a point per sample, a line per configuration", s0->xlabel);
	chart_open(&c, dir, s0->scenario, "_series", 520, title, line2);
	free(line2);
	free(title);
	for (size_t j = i; j < series_count(); j++) {
		const struct ser *s = series_at(j);

		if (s->run || strcmp(s->scenario, s0->scenario))
			continue;
		for (size_t k = 0; k < s->n; k++) {
			fprintf(c.d, "%g\t%g\n", s->x[k], s->y[k]);
			top = fmax(top, s->y[k]);
		}
		fputs("\n\n", c.d);
		GROW(names, cap, n + 1);
		names[n++] = s->name;
	}
	fprintf(c.g, "set xlabel ");
	gp_str(c.g, s0->xlabel);
	fprintf(c.g, "\nset ylabel ");
	gp_str(c.g, s0->ylabel);
	fprintf(c.g, "\nset yrange [0:%.9g]\n", top > 0 ? top * 1.1 : 1);
	key_below(c.g);
	plot_lines(&c, names, n, "linespoints pt 7 ps 0.5");
	free(names);
	return chart_close(&c);
}

int plot(const char *dir)
{
	char *version[] = {"gnuplot", "--version", NULL};
	struct strlist scs = {0};
	int made = 0;

	if (spawn(NULL, version)) {
		fprintf(stderr, "zpage-bench: --plot: gnuplot is not installed; no charts written "
				"(apt-get install gnuplot-nox)\n");
		return 0;
	}
	if (mkdir(dir, 0755) && errno != EEXIST)
		die("--plot %s: %s", dir, strerror(errno));
	result_scenarios(0, &scs);
	for (size_t i = 0; i < scs.n; i++) {
		made += bar_chart(dir, scs.v[i]);
		made += cdf_chart(dir, scs.v[i]);
	}
	strlist_free(&scs);
	for (size_t i = 0; i < series_count(); i++) {
		bool first = !series_at(i)->run;

		for (size_t j = 0; j < i; j++)
			first &= strcmp(series_at(j)->scenario, series_at(i)->scenario) != 0;
		if (first)
			made += series_chart(dir, i);
	}
	return made;
}
