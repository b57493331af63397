/* SPDX-License-Identifier: MIT */
/*
 * zpage-bench - zpage against the kernel and the allocators people use.
 * `zpage-bench --help` lists scenarios and options.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

unsigned opt_threads;
double opt_scale = 1.0;
double opt_idle = -1; /* -1: 6 s, or none at --scale below 1 */

/* ---- helpers ---- */

double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;

	return a < b ? -1 : a > b;
}

double pct(const double *v, size_t n, double p)
{
	double *c, r;

	if (!n)
		return 0;
	c = xmalloc(n * sizeof(*c));
	memcpy(c, v, n * sizeof(*c));
	qsort(c, n, sizeof(*c), cmp_double);
	r = c[(size_t)((n - 1) * p / 100.0 + 0.5)];
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

struct zp_arena *arena_or_die(const struct zp_config *cfg)
{
	struct zp_arena *a = zp_arena_create(cfg);

	if (!a)
		die("zp_arena_create: %s", strerror(errno));
	return a;
}

static bool progress_on;

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

/* ---- results ---- */

struct res {
	char scenario[32], row[48], metric[32], unit[12];
	double median, p10, p90;
	double *samples;
	size_t n;
};
struct ser {
	char scenario[32], name[48], xlabel[32], ylabel[32];
	double *x, *y;
	size_t n;
};
static struct res *res;
static size_t nres, capres;
static struct ser *sers;
static size_t nsers;
static char notes[64][256], note_sc[64][32];
static size_t nnotes;
static char refs[16][2][48];
static size_t nrefs;

void result(const char *scenario, const char *row, const char *metric, const char *unit, const double *samples,
	    size_t n)
{
	struct res *r;

	if (nres == capres) {
		capres = capres ? 2 * capres : 64;
		res = realloc(res, capres * sizeof(*res));
		if (!res)
			die("out of memory");
	}
	r = &res[nres++];
	memset(r, 0, sizeof(*r));
	snprintf(r->scenario, sizeof(r->scenario), "%s", scenario);
	snprintf(r->row, sizeof(r->row), "%s", row);
	snprintf(r->metric, sizeof(r->metric), "%s", metric);
	snprintf(r->unit, sizeof(r->unit), "%s", unit);
	r->median = pct(samples, n, 50);
	r->p10 = pct(samples, n, 10);
	r->p90 = pct(samples, n, 90);
	r->samples = xmalloc(n * sizeof(double));
	memcpy(r->samples, samples, n * sizeof(double));
	r->n = n;
}

void note(const char *scenario, const char *fmt, ...)
{
	va_list ap;

	if (nnotes == 64)
		return;
	snprintf(note_sc[nnotes], sizeof(note_sc[0]), "%s", scenario);
	va_start(ap, fmt);
	vsnprintf(notes[nnotes++], sizeof(notes[0]), fmt, ap);
	va_end(ap);
}

void reference(const char *scenario, const char *row)
{
	if (nrefs == 16)
		return;
	snprintf(refs[nrefs][0], sizeof(refs[0][0]), "%s", scenario);
	snprintf(refs[nrefs++][1], sizeof(refs[0][1]), "%s", row);
}

void series(const char *scenario, const char *name, const double *x, const double *y, size_t n, const char *xlabel,
	    const char *ylabel)
{
	struct ser *s;

	sers = realloc(sers, (nsers + 1) * sizeof(*sers));
	if (!sers)
		die("out of memory");
	s = &sers[nsers++];
	snprintf(s->scenario, sizeof(s->scenario), "%s", scenario);
	snprintf(s->name, sizeof(s->name), "%s", name);
	snprintf(s->xlabel, sizeof(s->xlabel), "%s", xlabel);
	snprintf(s->ylabel, sizeof(s->ylabel), "%s", ylabel);
	s->x = xmalloc(n * sizeof(double));
	s->y = xmalloc(n * sizeof(double));
	memcpy(s->x, x, n * sizeof(double));
	memcpy(s->y, y, n * sizeof(double));
	s->n = n;
}

static const char *ref_of(const char *scenario)
{
	for (size_t i = 0; i < nrefs; i++)
		if (!strcmp(refs[i][0], scenario))
			return refs[i][1];
	return NULL;
}

static const struct res *find(const char *sc, const char *row, const char *metric)
{
	for (size_t i = 0; i < nres; i++)
		if (!strcmp(res[i].scenario, sc) && !strcmp(res[i].row, row) && !strcmp(res[i].metric, metric))
			return &res[i];
	return NULL;
}

static void fmt_val(char *buf, size_t len, double v)
{
	if (v >= 1000)
		snprintf(buf, len, "%.0f", v);
	else if (v >= 10)
		snprintf(buf, len, "%.1f", v);
	else
		snprintf(buf, len, "%.2f", v);
}

/* One table per scenario: a line per row, per metric "median [p10-p90]",
 * then "x ref" (median / the reference row's median) when one is set. */
static void print_tables(FILE *f, size_t from)
{
	char done[32][32];
	size_t ndone = 0;

	for (size_t i = from; i < nres; i++) {
		const char *sc = res[i].scenario, *ref = ref_of(sc);
		char metrics[8][32], rows[32][48];
		size_t nm = 0, nr = 0;
		bool seen = false;

		for (size_t k = 0; k < ndone; k++)
			seen |= !strcmp(done[k], sc);
		if (seen || ndone == 32)
			continue;
		snprintf(done[ndone++], 32, "%s", sc);
		for (size_t j = from; j < nres; j++) {
			bool hm = false, hr = false;

			if (strcmp(res[j].scenario, sc))
				continue;
			for (size_t k = 0; k < nm; k++)
				hm |= !strcmp(metrics[k], res[j].metric);
			for (size_t k = 0; k < nr; k++)
				hr |= !strcmp(rows[k], res[j].row);
			if (!hm && nm < 8)
				snprintf(metrics[nm++], 32, "%s", res[j].metric);
			if (!hr && nr < 32)
				snprintf(rows[nr++], 48, "%s", res[j].row);
		}
		fprintf(f, "\n== %s: medians [p10-p90]%s%s%s\n", sc, ref ? "; x = median / median of '" : "",
			ref ? ref : "", ref ? "'" : "");
		fprintf(f, "  %-34s", "row");
		for (size_t m = 0; m < nm; m++) {
			const struct res *any = NULL;

			for (size_t r = 0; r < nr && !any; r++)
				any = find(sc, rows[r], metrics[m]);
			char h[64];

			snprintf(h, sizeof(h), "%s (%s)", metrics[m], any ? any->unit : "");
			fprintf(f, " %26s", h);
			if (ref)
				fprintf(f, " %6s", "x");
		}
		fputc('\n', f);
		for (size_t r = 0; r < nr; r++) {
			fprintf(f, "  %-34s", rows[r]);
			for (size_t m = 0; m < nm; m++) {
				const struct res *x = find(sc, rows[r], metrics[m]);
				const struct res *rr = ref ? find(sc, ref, metrics[m]) : NULL;
				char a[24], b[24], c[24], cell[80];

				if (!x) {
					fprintf(f, " %26s", "-");
					if (ref)
						fprintf(f, " %6s", "");
					continue;
				}
				fmt_val(a, sizeof(a), x->median);
				fmt_val(b, sizeof(b), x->p10);
				fmt_val(c, sizeof(c), x->p90);
				snprintf(cell, sizeof(cell), "%s [%s-%s]", a, b, c);
				fprintf(f, " %26s", cell);
				if (ref) {
					if (rr && rr->median > 0)
						fprintf(f, " %6.3g", x->median / rr->median);
					else
						fprintf(f, " %6s", "");
				}
			}
			fputc('\n', f);
		}
		for (size_t k = 0; k < nnotes; k++)
			if (!strcmp(note_sc[k], sc))
				fprintf(f, "  %s\n", notes[k]);
	}
	fflush(f);
}

static void write_csv(const char *path)
{
	FILE *f = fopen(path, "w");

	if (!f)
		die("--csv %s: %s", path, strerror(errno));
	fprintf(f, "scenario,row,metric,unit,median,p10,p90,samples\n");
	for (size_t i = 0; i < nres; i++)
		fprintf(f, "\"%s\",\"%s\",\"%s\",\"%s\",%.6g,%.6g,%.6g,%zu\n", res[i].scenario, res[i].row,
			res[i].metric, res[i].unit, res[i].median, res[i].p10, res[i].p90, res[i].n);
	fclose(f);
}

static void write_json(const char *path)
{
	FILE *f = fopen(path, "w");

	if (!f)
		die("--json %s: %s", path, strerror(errno));
	fprintf(f, "{\"results\": [\n");
	for (size_t i = 0; i < nres; i++)
		fprintf(f,
			"  {\"scenario\": \"%s\", \"row\": \"%s\", \"metric\": \"%s\", \"unit\": \"%s\", "
			"\"median\": %.6g, \"p10\": %.6g, \"p90\": %.6g, \"samples\": %zu}%s\n",
			res[i].scenario, res[i].row, res[i].metric, res[i].unit, res[i].median, res[i].p10, res[i].p90,
			res[i].n, i + 1 < nres ? "," : "");
	fprintf(f, "]}\n");
	fclose(f);
}

static void file_name(char *out, size_t len, const char *dir, const char *sc, const char *suffix)
{
	char clean[64];
	size_t i;

	for (i = 0; sc[i] && i < sizeof(clean) - 1; i++)
		clean[i] = (sc[i] == ' ' || sc[i] == '/' || sc[i] == '(' || sc[i] == ')') ? '_' : sc[i];
	clean[i] = 0;
	snprintf(out, len, "%s/%s%s", dir, clean, suffix);
}

/* One SVG per scenario: bars of the first metric (median, p10-p90 error
 * bars); latency metrics also as CDFs; series as lines. */
static int plot(const char *dir)
{
	char done[32][32];
	size_t ndone = 0;
	int made = 0;

	if (system("command -v gnuplot >/dev/null 2>&1")) {
		fprintf(stderr, "zpage-bench: --plot: gnuplot is not installed; no charts written "
				"(apt-get install gnuplot-nox)\n");
		return 0;
	}
	if (mkdir(dir, 0755) && errno != EEXIST)
		die("--plot %s: %s", dir, strerror(errno));
	for (size_t i = 0; i < nres; i++) {
		const char *sc = res[i].scenario;
		char dat[512], svg[512], cmd[12288];
		bool seen = false;
		FILE *d;

		for (size_t k = 0; k < ndone; k++)
			seen |= !strcmp(done[k], sc);
		if (seen || ndone == 32)
			continue;
		snprintf(done[ndone++], 32, "%s", sc);
		file_name(dat, sizeof(dat), dir, sc, ".dat");
		file_name(svg, sizeof(svg), dir, sc, ".svg");
		d = fopen(dat, "w");
		if (!d)
			die("--plot: %s: %s", dat, strerror(errno));
		double lo = 0, hi = 0;

		for (size_t j = 0; j < nres; j++) {
			if (strcmp(res[j].scenario, sc) || strcmp(res[j].metric, res[i].metric))
				continue;
			fprintf(d, "\"%s\" %g %g %g\n", res[j].row, res[j].median, res[j].p10, res[j].p90);
			if (res[j].median > 0 && (!lo || res[j].median < lo))
				lo = res[j].median;
			if (res[j].median > hi)
				hi = res[j].median;
		}
		fclose(d);
		/* medians spanning more than 50x: points on a log axis, else bars */
		bool logy = lo > 0 && hi / lo > 50;

		snprintf(cmd, sizeof(cmd),
			 "gnuplot -e \"set terminal svg size 900,500 noenhanced; set output '%s'; set title '%s: %s "
			 "(%s), "
			 "median with p10-p90%s'; set style fill solid 0.5; set boxwidth 0.6; set xtics rotate by -30; "
			 "%s; set key off; set xrange [-0.5:*]; plot '%s' using 0:2:xtic(1) with %s, '' using 0:2:3:4 "
			 "with "
			 "yerrorbars lc black\" 2>/dev/null",
			 svg, sc, res[i].metric, res[i].unit, logy ? ", log scale" : "",
			 logy ? "set logscale y" : "set yrange [0:*]", dat, logy ? "points pt 7 ps 1.5" : "boxes");
		made += !system(cmd);
		/* latency distributions as CDFs: the scenario's first metric
		 * named "latency" with many samples */
		const struct res *lm = NULL;

		for (size_t j = 0; j < nres && !lm; j++)
			if (!strcmp(res[j].scenario, sc) && !strcmp(res[j].metric, "latency") && res[j].n > 100)
				lm = &res[j];
		if (lm) {
			char plotcmd[8192] = "", cdf[512];
			size_t len = 0;

			file_name(svg, sizeof(svg), dir, sc, "_cdf.svg");
			for (size_t j = 0; j < nres; j++) {
				if (strcmp(res[j].scenario, sc) || strcmp(res[j].metric, lm->metric))
					continue;
				char tag[32];
				snprintf(tag, sizeof(tag), "_cdf%zu.dat", j);
				file_name(cdf, sizeof(cdf), dir, sc, tag);
				d = fopen(cdf, "w");
				if (!d)
					continue;
				double *c = xmalloc(res[j].n * sizeof(double));
				memcpy(c, res[j].samples, res[j].n * sizeof(double));
				qsort(c, res[j].n, sizeof(double), cmp_double);
				size_t step = res[j].n > 2000 ? res[j].n / 2000 : 1;
				for (size_t k = 0; k < res[j].n; k += step)
					fprintf(d, "%g %g\n", c[k] > 0 ? c[k] : 1, (double)(k + 1) / res[j].n);
				free(c);
				fclose(d);
				len += (size_t)snprintf(plotcmd + len, sizeof(plotcmd) - len,
							"%s'%s' with lines title '%s'", len ? ", " : "", cdf,
							res[j].row);
				if (len >= sizeof(plotcmd))
					break;
			}
			snprintf(cmd, sizeof(cmd),
				 "gnuplot -e \"set terminal svg size 900,500 noenhanced; set output '%s'; set title "
				 "'%s: %s CDF'; "
				 "set logscale x; set xlabel '%s'; set ylabel 'fraction of calls'; set key bottom "
				 "right; "
				 "plot %s\" 2>/dev/null",
				 svg, sc, lm->metric, lm->unit, plotcmd);
			made += !system(cmd);
		}
	}
	for (size_t i = 0; i < nsers; i++) {
		char dat[512], svg[512], cmd[4096], plotcmd[2048] = "";
		size_t len = 0;
		bool first = true;

		for (size_t j = 0; j < i; j++)
			first &= strcmp(sers[j].scenario, sers[i].scenario) != 0;
		if (!first)
			continue;
		for (size_t j = i; j < nsers; j++) {
			if (strcmp(sers[j].scenario, sers[i].scenario))
				continue;
			char tag[32];
			snprintf(tag, sizeof(tag), "_s%zu.dat", j);
			file_name(dat, sizeof(dat), dir, sers[j].scenario, tag);
			FILE *d = fopen(dat, "w");
			if (!d)
				continue;
			for (size_t k = 0; k < sers[j].n; k++)
				fprintf(d, "%g %g\n", sers[j].x[k], sers[j].y[k]);
			fclose(d);
			len += (size_t)snprintf(plotcmd + len, sizeof(plotcmd) - len,
						"%s'%s' with linespoints title '%s'", len ? ", " : "", dat,
						sers[j].name);
		}
		file_name(svg, sizeof(svg), dir, sers[i].scenario, "_series.svg");
		snprintf(cmd, sizeof(cmd),
			 "gnuplot -e \"set terminal svg size 900,500 noenhanced; set output '%s'; set title '%s'; set "
			 "xlabel '%s'; "
			 "set ylabel '%s'; set yrange [0:*]; plot %s\" 2>/dev/null",
			 svg, sers[i].scenario, sers[i].xlabel, sers[i].ylabel, plotcmd);
		made += !system(cmd);
	}
	return made;
}

/* ---- command line ---- */

static const struct {
	const char *name;
	void (*run)(void);
	const char *what;
} scenarios[] = {
	{"fault", sc_fault, "a zeroed 2 MiB block for an address, first touch and the 64 KiB around it"},
	{"anon-w-seq", NULL, "threads take 2 MiB zeroed blocks and write every word in order (GB/s)"},
	{"anon-w-rand", NULL, "the same, pages in random order"},
	{"churn", sc_churn, "seeded alloc/free mix of orders 0..10, ops/s and latency percentiles"},
	{"clear", sc_clear, "the clearing engine against Linux's orders, plain cached and non-temporal"},
	{"rss", sc_rss, "resident memory over time: grow, free, idle; reporting on and off"},
	{"prezero", sc_prezero, "zeroing order-9 allocation latency with and without ZP_PREZERO"},
};
#define NR_SCENARIOS (sizeof(scenarios) / sizeof(scenarios[0]))
static const char *default_suite[] = {"fault", "anon-w-seq", "churn"};

static void run_seq(void)
{
	sc_anon(false);
}
static void run_rand(void)
{
	sc_anon(true);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: zpage-bench [options] [scenario ...]\n\n"
		   "With no scenario, runs the default suite (fault, anon-w-seq, churn) in about a minute.\n\n"
		   "scenarios:\n");
	for (size_t i = 0; i < NR_SCENARIOS; i++)
		fprintf(f, "  %-12s %s\n", scenarios[i].name, scenarios[i].what);
	fprintf(f, "  %-12s every scenario\n", "all");
	fprintf(f, "\noptions:\n"
		   "  --csv FILE      also write every result as CSV\n"
		   "  --json FILE     also write every result as JSON\n"
		   "  --plot DIR      write SVG charts to DIR (needs gnuplot; says so when missing)\n"
		   "  --threads N     threads for anon-w-* and the largest churn row (default: online CPUs)\n"
		   "  --scale X       multiply sample counts and durations by X (default 1; 0.05 = smoke test)\n"
		   "  --idle S        fault: also measure after S seconds of idle, past the OS's (and a\n"
		   "                  hypervisor's) free page reporting delay (default 6; 0 = skip;\n"
		   "                  skipped by default when --scale is below 1)\n"
		   "  -h, --help      this text\n\n"
		   "Rows are medians over repeated samples, with the 10th-90th percentile spread;\n"
		   "every ratio compares rows measured in the same run. Peers (jemalloc, mimalloc,\n"
		   "tcmalloc) are loaded with dlopen; a missing one is reported as not installed.\n");
}

static bool parse_positive(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || !(v > 0))
		return false;
	*out = v;
	return true;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"csv", required_argument, NULL, 'c'},	 {"json", required_argument, NULL, 'j'},
		{"plot", required_argument, NULL, 'p'},	 {"threads", required_argument, NULL, 't'},
		{"scale", required_argument, NULL, 's'}, {"help", no_argument, NULL, 'h'},
		{"idle", required_argument, NULL, 'i'},	 {NULL, 0, NULL, 0},
	};
	const char *csv = NULL, *json = NULL, *plotdir = NULL;
	const char *run[NR_SCENARIOS + 1];
	size_t nrun = 0;
	int c;
	double v;

	/* jemalloc uses initial-exec TLS: dlopen needs surplus static TLS, which
	 * glibc sizes at start-up.  Re-execute once with the tunable set. */
	if (!getenv("ZPAGE_BENCH_REEXEC")) {
		const char *old = getenv("GLIBC_TUNABLES");
		char tun[1024];

		snprintf(tun, sizeof(tun), "%s%sglibc.rtld.optional_static_tls=16384", old ? old : "", old ? ":" : "");
		setenv("GLIBC_TUNABLES", tun, 1);
		setenv("ZPAGE_BENCH_REEXEC", "1", 1);
		execv("/proc/self/exe", argv);
		/* could not re-execute: go on; jemalloc may then be unavailable */
	}

	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			csv = optarg;
			break;
		case 'j':
			json = optarg;
			break;
		case 'p':
			plotdir = optarg;
			break;
		case 't':
			if (!parse_positive(optarg, &v) || v != (unsigned)v || v > 1024) {
				fprintf(stderr,
					"zpage-bench: --threads wants a whole number from 1 to 1024, not '%s'\n",
					optarg);
				return 2;
			}
			opt_threads = (unsigned)v;
			break;
		case 's':
			if (!parse_positive(optarg, &v) || v > 100) {
				fprintf(stderr,
					"zpage-bench: --scale wants a number above 0 and at most 100, not '%s'\n",
					optarg);
				return 2;
			}
			opt_scale = v;
			break;
		case 'i':
			if (!strcmp(optarg, "0")) {
				opt_idle = 0;
				break;
			}
			if (!parse_positive(optarg, &v) || v > 600) {
				fprintf(stderr, "zpage-bench: --idle wants seconds from 0 to 600, not '%s'\n", optarg);
				return 2;
			}
			opt_idle = v;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			fprintf(stderr, "zpage-bench: unknown option or missing value: '%s' (see --help)\n",
				argv[optind - 1]);
			return 2;
		}
	}
	for (int i = optind; i < argc; i++) {
		bool ok = !strcmp(argv[i], "all");

		for (size_t k = 0; k < NR_SCENARIOS; k++)
			ok |= !strcmp(argv[i], scenarios[k].name);
		if (!ok) {
			fprintf(stderr, "zpage-bench: unknown scenario '%s' (see --help)\n", argv[i]);
			return 2;
		}
		if (!strcmp(argv[i], "all")) {
			for (size_t k = 0; k < NR_SCENARIOS; k++)
				run[nrun++] = scenarios[k].name;
			break;
		}
		if (nrun < NR_SCENARIOS)
			run[nrun++] = argv[i];
	}
	if (!nrun)
		for (size_t k = 0; k < sizeof(default_suite) / sizeof(default_suite[0]); k++)
			run[nrun++] = default_suite[k];
	if (opt_idle < 0)
		opt_idle = opt_scale < 1 ? 0 : 6;
	if (!opt_threads) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		opt_threads = n > 0 ? (unsigned)n : 1;
	}
	progress_on = isatty(2);
	peers_load();
	printf("zpage-bench: %u threads, scale %g; peers:", opt_threads, opt_scale);
	for (int i = 0; i < NR_PEERS; i++) {
		if (peers[i].available)
			printf(" %s", peers[i].name);
		else
			printf(" %s (not installed: %s)", peers[i].name, peers[i].why);
	}
	printf("\n");
	for (size_t i = 0; i < nrun; i++) {
		size_t from = nres;

		for (size_t k = 0; k < NR_SCENARIOS; k++) {
			if (strcmp(run[i], scenarios[k].name))
				continue;
			double t0 = now_ns();
			if (!strcmp(run[i], "anon-w-seq"))
				run_seq();
			else if (!strcmp(run[i], "anon-w-rand"))
				run_rand();
			else
				scenarios[k].run();
			progress("%s", "");
			print_tables(stdout, from);
			printf("  (%s took %.1f s)\n", run[i], (now_ns() - t0) / 1e9);
		}
	}
	if (csv)
		write_csv(csv);
	if (json)
		write_json(json);
	if (plotdir) {
		int n = plot(plotdir);
		if (n)
			printf("\n%d chart(s) written to %s\n", n, plotdir);
	}
	return 0;
}
