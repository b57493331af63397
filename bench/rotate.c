/* SPDX-License-Identifier: MIT */
/*
 * Rows in a rotating order.  A scenario that measures its rows round by
 * round (or sample by sample, interleaved) asks rotation_next() for the
 * order of each step: the rows in table order, starting at a row that moves
 * on from step to step, so that no row is always the first (the one that
 * meets a cold cache, memory the hypervisor discarded, a clock ramping up)
 * or always the last.  With at least as many steps as rows, the first row
 * moves on by one each step, so each row goes first as often as any other,
 * give or take one; with fewer steps, the first rows are spread evenly
 * over the rows.
 *
 * rotation_done() says in the scenario's note how often each row went
 * first, counted from the orders handed out.  With ZPAGE_BENCH_ROW_ORDER=FILE
 * in the environment, every step's order is appended to FILE, one line a
 * step: "scenario<TAB>unit<TAB>step<TAB>row indices in the order run" (the
 * smoke test reads it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

/* ZPAGE_BENCH_ROW_ORDER's file, opened at the first step; NULL: unset */
static FILE *trace_file(void)
{
	static FILE *f;
	static bool tried;
	const char *path;

	if (tried)
		return f;
	tried = true;
	path = getenv("ZPAGE_BENCH_ROW_ORDER");
	if (path && *path && !(f = fopen(path, "a")))
		die("ZPAGE_BENCH_ROW_ORDER=%s: cannot open it for appending", path);
	return f;
}

void rotation_init(struct rotation *r, const char *sc, const char *unit, size_t nrows, size_t nsteps)
{
	*r = (struct rotation){
		.sc = xstrdup(sc),
		.unit = unit,
		.items = "rows",
		.n = nrows,
		.nsteps = nsteps ? nsteps : 1,
		.first = calloc(nrows ? nrows : 1, sizeof(size_t)),
		.order = xmalloc(nrows * sizeof(size_t)),
	};
	if (!r->first)
		die("out of memory");
}

const size_t *rotation_next(struct rotation *r)
{
	size_t s = r->step++, start;
	FILE *f = trace_file();

	if (!r->n)
		return r->order;
	start = r->nsteps >= r->n ? s % r->n : s * r->n / r->nsteps % r->n;
	for (size_t k = 0; k < r->n; k++)
		r->order[k] = (start + k) % r->n;
	r->first[start]++;
	if (f) {
		fprintf(f, "%s\t%s\t%zu\t", r->sc, r->unit, s);
		for (size_t k = 0; k < r->n; k++)
			fprintf(f, "%s%zu", k ? " " : "", r->order[k]);
		fputc('\n', f);
		fflush(f);
	}
	return r->order;
}

void rotation_done(struct rotation *r)
{
	size_t lo = (size_t)-1, hi = 0;

	for (size_t i = 0; i < r->n; i++) {
		lo = r->first[i] < lo ? r->first[i] : lo;
		hi = r->first[i] > hi ? r->first[i] : hi;
	}
	if (r->n > 1)
		note(r->sc, "row order rotating by %s: each of the %zu %s went first in %zu to %zu of %zu %ss", r->unit,
		     r->n, r->items, lo, hi, r->step, r->unit);
	free(r->sc);
	free(r->first);
	free(r->order);
	*r = (struct rotation){0};
}
