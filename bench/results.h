/* SPDX-License-Identifier: MIT */
/*
 * zpage-bench: the store of results as main.c and plot.c read it back, and
 * the writers of tables, CSV, JSON (results.c) and charts (plot.c).
 */
#ifndef ZPAGE_BENCH_RESULTS_H
#define ZPAGE_BENCH_RESULTS_H

#include <stdio.h>

#include "bench.h"

/* One metric of one row, in the order result() recorded them. */
struct res {
	const char *scenario, *row, *metric, *unit;
	double median, p10, p90;
	const double *samples;
	size_t n;
	unsigned run; /* 0-based, of --repeat */
};
/* One line of a line chart, in the order series() recorded them. */
struct ser {
	const char *scenario, *name, *xlabel, *ylabel;
	const double *x, *y;
	size_t n;
	unsigned run;
};

/* The run (0-based, of --repeat) that result(), note() and series()
 * record from now on. */
void results_set_run(unsigned run);
size_t results_count(void);
const struct res *result_at(size_t i);
size_t series_count(void);
const struct ser *series_at(size_t i);
/* The first result from index @from on of @sc with @row and @metric (NULL:
 * any); NULL if none. */
const struct res *find_result(size_t from, const char *sc, const char *row, const char *metric);
const char *reference_of(const char *sc); /* NULL: none set */
const char *counterpart_of(const char *sc, const char *row); /* NULL: none set */
bool higher_is_better(const char *unit);
/* A median as the tables print it: 3 significant digits or the integer. */
void fmt_val(char *buf, size_t len, double v);

/* A list of distinct strings in the order first added (not copied). */
struct strlist {
	const char **v;
	size_t n, cap;
};
void strlist_add(struct strlist *l, const char *s);
void strlist_free(struct strlist *l);
/* The distinct scenarios of the results from index @from on. */
void result_scenarios(size_t from, struct strlist *out);

/* The scenario tables of the results from index @from on. */
void print_tables(FILE *f, size_t from);
/* --repeat: per scenario, row and metric, the median of the @runs run
 * medians and their min-max; then zpage's rows against their peers (rows
 * of their kind, the scenario's counterpart, a zpage reference row), run
 * by run (results.c: ratio_table()). */
void print_spread(FILE *f, unsigned runs);
/* The first run's table of @sc, and with @runs > 1 its spread table and
 * its run-by-run table. */
void print_scenario(FILE *f, const char *sc, unsigned runs);
void write_csv(const char *path);
void write_json(const char *path);
/* plot.c: the charts; returns how many were written.  A chart's files are
 * DIR/NAME.svg (.png, .gp, .dat), NAME = chart_name(scenario, "", "_cdf"
 * or "_series"), to be freed. */
int plot(const char *dir);
char *chart_name(const char *sc, const char *suffix);
/* report.c: --report DIR, DIR/index.md (and the charts) */
void write_report(const char *dir, unsigned runs);

/* env.c: the environment, collected once after the peers are loaded */
struct env_field {
	const char *key;
	char *value;
	bool number; /* JSON writes it unquoted */
};
void env_collect(int argc, char **argv);
void env_print(FILE *f); /* the header above the tables */
const char *env_value(const char *key); /* "unknown" when there is no such field */
size_t env_count(void);
const struct env_field *env_at(size_t i);

/* compare.c: `zpage-bench compare OLD.json NEW.json`, @argv after "compare" */
int compare_main(int argc, char **argv);

#endif
