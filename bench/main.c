/* SPDX-License-Identifier: MIT */
/*
 * zpage-bench - zpage against the kernel and the allocators people use.
 * `zpage-bench --help` lists scenarios and options.
 *
 * This file is the command line: the options, the table of scenarios, and
 * the run of the chosen ones (--repeat times), each followed by its table.
 * The results, CSV and JSON are in results.c, the charts in plot.c, the
 * environment header in env.c, `zpage-bench compare` in compare.c, the
 * report in report.c.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "results.h"

unsigned opt_threads;
double opt_scale = 1.0;
double opt_idle = -1; /* -1: 6 s, or none at --scale below 1 */
bool opt_dump;
enum churn_touch opt_churn_touch = TOUCH_PAGE;
bool opt_churn_nozero;
bool opt_churn_orders;
bool opt_churn_floor;
unsigned opt_repeat = 1;

static const struct scenario {
	const char *name;
	const char *what; /* one line for --help */
	void (*run)(void);
	bool by_default; /* in the suite run when no scenario is named */
} scenarios[] = {
	{"fault", "a zeroed 2 MiB block for an address, first touch and the 64 KiB around it", sc_fault, true},
	{"anon-w-seq", "threads take 2 MiB zeroed blocks and write every word in order (GB/s)", sc_anon_seq, true},
	{"anon-w-rand", "the same, pages in random order", sc_anon_rand, false},
	{"churn", "seeded alloc/free mix of orders 0..10, ops/s and latency percentiles", sc_churn, true},
	{"reuse", "a zeroed block taken, written whole and given back, again and again (orders 6, 9, 10)", sc_reuse,
	 true},
	{"clear", "the clearing engine against Linux's orders, plain cached and non-temporal", sc_clear, false},
	{"rss", "resident memory over time: grow, free, idle; reporting on and off", sc_rss, false},
	{"prezero", "zeroing order-9 allocation latency with and without ZP_PREZERO", sc_prezero, false},
	{"pairs", "alloc+free pairs of orders 0..3, 8 allocs then 8 frees, 1 and N threads (M pairs/s)", sc_pairs,
	 false},
	{"scale", "arenas of 1 GiB to 1 TiB, max_order 10 to 20: create time, RSS, order-4 pair cost", sc_scale, false},
	{"seed", "the series' experiment: 256 MiB zeroed with THP from reported memory, skip vs clear again", sc_seed,
	 false},
	{"preload",
	 "numpy.zeros and node Buffer.alloc loops under each allocator and zpage-run (per iteration, peak RSS), beside "
	 "a bare clear",
	 sc_preload, false},
};
#define NR_SCENARIOS (sizeof(scenarios) / sizeof(scenarios[0]))

static void usage(FILE *f)
{
	fprintf(f, "usage: zpage-bench [options] [scenario ...]\n"
		   "       zpage-bench compare OLD.json NEW.json\n"
		   "       zpage-bench compare OLD.json... -- NEW.json...\n\n"
		   "With no scenario, runs the default suite (");
	for (size_t i = 0, n = 0; i < NR_SCENARIOS; i++)
		if (scenarios[i].by_default)
			fprintf(f, "%s%s", n++ ? ", " : "", scenarios[i].name);
	fprintf(f, ") in about half a minute.\n\n"
		   "scenarios:\n");
	for (size_t i = 0; i < NR_SCENARIOS; i++)
		fprintf(f, "  %-12s %s\n", scenarios[i].name, scenarios[i].what);
	fprintf(f, "  %-12s every scenario\n", "all");
	fprintf(f, "\noptions:\n"
		   "  --csv FILE      also write every result as CSV\n"
		   "  --json FILE     also write every result as JSON\n"
		   "  --plot DIR      write SVG charts to DIR, and PNG too when gnuplot has pngcairo\n"
		   "                  (needs gnuplot; says so when missing)\n"
		   "  --threads N     threads for anon-w-*, the largest churn row and pairs (default: online CPUs)\n"
		   "  --scale X       multiply sample counts and durations by X (default 1; 0.05 = smoke test)\n"
		   "  --idle S        fault: also measure after S seconds of idle, past the OS's (and a\n"
		   "                  hypervisor's) free page reporting delay (default 6; 0 = skip;\n"
		   "                  skipped by default when --scale is below 1)\n"
		   "  --churn-touch M churn writes one byte per page of each block it gets (M = page,\n"
		   "                  the default, as a program would), one per block (M = block) or\n"
		   "                  none (M = none: with --churn-zero none, each allocator's page-aligned\n"
		   "                  allocation and free alone)\n"
		   "  --churn-zero M  half of churn's allocations are zero-filled (M = half, the\n"
		   "                  default) or none (M = none)\n"
		   "  --churn-orders  churn also gives, for each block order, the mean time of each\n"
		   "                  kind of call and of what follows it up to the next call (after\n"
		   "                  an allocation, the writes into the block; after a free, the\n"
		   "                  loop alone), every row (scenario 'churn orders, N thread(s)')\n"
		   "  --churn-floor   churn also runs 'floor' rows: the same loop over blocks kept on\n"
		   "                  a stack per thread and order, a memset for a zero-filled one, no\n"
		   "                  allocator around them (an estimate of what the loop and its memory\n"
		   "                  cost without one, not a peer)\n"
		   "  --dump          print zp_arena_dump() of zpage's arenas as they end (churn: the one\n"
		   "                  arena of both zpage rows and every run)\n"
		   "  --report DIR    write DIR/index.md: the environment, each scenario's table, its charts\n"
		   "                  (drawn into DIR, as --plot) and a reading generated from the numbers\n"
		   "  --repeat N      run the chosen scenarios N times (default 1), then a table of the\n"
		   "                  spread of the medians over the runs, and zpage's rows against\n"
		   "                  their peers run by run (ratios, runs better, sign test; churn's\n"
		   "                  floor rows there as a reference);\n"
		   "                  CSV and JSON carry every run\n"
		   "  -h, --help      this text\n\n"
		   "Rows are medians over repeated samples, with the 10th-90th percentile spread;\n"
		   "every ratio compares rows measured in the same run. Peers (jemalloc, mimalloc,\n"
		   "tcmalloc) are loaded with dlopen; a missing one is reported as not installed.\n"
		   "The output starts with the environment (CPU, kernel, THP, VM, versions, and\n"
		   "the allocator settings in the environment, or none set); CSV has it as rows of\n"
		   "scenario \"environment\", JSON as an \"environment\" object.\n"
		   "compare: per row and metric on both sides, new/old of the medians and a\n"
		   "Mann-Whitney U test (over run medians from 5 runs a side, else the samples;\n"
		   "Benjamini-Hochberg q < 0.05, a 5%% floor); with --, the runs of each side's files\n"
		   "are pooled (bench/ab.sh runs two builds in alternation and compares them so);\n"
		   "bad input exits 2.\n"
		   "ZPAGE_BENCH_ROW_ORDER=FILE appends the order rows ran in, step by step, to FILE.\n");
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

/* Options into the opt_* globals and the output paths; -1 to go on, or
 * the exit code (0 after --help, 2 after one line on stderr). */
static int parse_options(int argc, char **argv, const char **csv, const char **json, const char **plotdir,
			 const char **report)
{
	static const struct option longopts[] = {
		{"csv", required_argument, NULL, 'c'},
		{"json", required_argument, NULL, 'j'},
		{"plot", required_argument, NULL, 'p'},
		{"threads", required_argument, NULL, 't'},
		{"scale", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{"idle", required_argument, NULL, 'i'},
		{"dump", no_argument, NULL, 'd'},
		{"churn-touch", required_argument, NULL, 'T'},
		{"churn-zero", required_argument, NULL, 'Z'},
		{"churn-orders", no_argument, NULL, 'O'},
		{"churn-floor", no_argument, NULL, 'F'},
		{"repeat", required_argument, NULL, 'r'},
		{"report", required_argument, NULL, 'R'},
		{NULL, 0, NULL, 0},
	};
	int c;
	double v;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			*csv = optarg;
			break;
		case 'd':
			opt_dump = true;
			break;
		case 'j':
			*json = optarg;
			break;
		case 'p':
			*plotdir = optarg;
			break;
		case 'R':
			*report = optarg;
			break;
		case 't':
		case 'r':
			if (!parse_positive(optarg, &v) || v != (unsigned)v || v > 1024) {
				fprintf(stderr, "zpage-bench: --%s wants a whole number from 1 to 1024, not '%s'\n",
					c == 't' ? "threads" : "repeat", optarg);
				return 2;
			}
			*(c == 't' ? &opt_threads : &opt_repeat) = (unsigned)v;
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
			if (*optarg && strspn(optarg, "0.") == strlen(optarg) && strchr(optarg, '0')) {
				opt_idle = 0; /* 0, 0.0: skip the idle rows */
				break;
			}
			if (!parse_positive(optarg, &v) || v > 600) {
				fprintf(stderr, "zpage-bench: --idle wants seconds from 0 to 600, not '%s'\n", optarg);
				return 2;
			}
			opt_idle = v;
			break;
		case 'T':
			if (!strcmp(optarg, "page") || !strcmp(optarg, "block") || !strcmp(optarg, "none")) {
				opt_churn_touch = optarg[0] == 'p'   ? TOUCH_PAGE
						  : optarg[0] == 'b' ? TOUCH_BLOCK
								     : TOUCH_NONE;
				break;
			}
			fprintf(stderr, "zpage-bench: --churn-touch wants page, block or none, not '%s'\n", optarg);
			return 2;
		case 'Z':
			if (!strcmp(optarg, "half") || !strcmp(optarg, "none")) {
				opt_churn_nozero = optarg[0] == 'n';
				break;
			}
			fprintf(stderr, "zpage-bench: --churn-zero wants half or none, not '%s'\n", optarg);
			return 2;
		case 'O':
			opt_churn_orders = true;
			break;
		case 'F':
			opt_churn_floor = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			fprintf(stderr, "zpage-bench: unknown, ambiguous or incomplete option: '%s' (see --help)\n",
				argv[optind - 1]);
			return 2;
		}
	}
	return -1;
}

/* Add @s to @run unless it is there: each scenario runs once, in the
 * order first named (so @run never holds more than NR_SCENARIOS). */
static void choose(const struct scenario **run, size_t *nrun, const struct scenario *s)
{
	for (size_t i = 0; i < *nrun; i++)
		if (run[i] == s)
			return;
	run[(*nrun)++] = s;
}

/* The scenarios named on the command line (all of them for "all", the
 * default suite for none); false after one line on stderr. */
static bool choose_scenarios(int argc, char **argv, const struct scenario **run, size_t *nrun)
{
	for (int i = optind; i < argc; i++) {
		bool all = !strcmp(argv[i], "all"), known = all;

		for (size_t k = 0; k < NR_SCENARIOS; k++) {
			if (all || !strcmp(argv[i], scenarios[k].name)) {
				choose(run, nrun, &scenarios[k]);
				known = true;
			}
		}
		if (!known) {
			fprintf(stderr, "zpage-bench: unknown scenario '%s' (see --help)\n", argv[i]);
			return false;
		}
	}
	if (optind == argc) /* none named: the default suite */
		for (size_t k = 0; k < NR_SCENARIOS; k++)
			if (scenarios[k].by_default)
				choose(run, nrun, &scenarios[k]);
	return true;
}

/* jemalloc uses initial-exec TLS: dlopen needs surplus static TLS, which
 * glibc sizes at start-up.  Re-execute once with the tunable set; if that
 * fails, go on (jemalloc may then be unavailable). */
static void reexec_with_static_tls(char **argv)
{
	const char *old = getenv("GLIBC_TUNABLES");
	char *tun;

	if (getenv("ZPAGE_BENCH_REEXEC"))
		return;
	tun = xasprintf("%s%s" REEXEC_TUNABLE, old ? old : "", old ? ":" : "");
	setenv("GLIBC_TUNABLES", tun, 1);
	setenv("ZPAGE_BENCH_REEXEC", "1", 1);
	free(tun);
	execv("/proc/self/exe", argv);
}

int main(int argc, char **argv)
{
	const char *csv = NULL, *json = NULL, *plotdir = NULL, *report = NULL;
	const struct scenario *run[NR_SCENARIOS];
	size_t nrun = 0;
	int rc;

	if (argc > 1 && !strcmp(argv[1], "compare"))
		return compare_main(argc - 2, argv + 2);
	reexec_with_static_tls(argv);
	rc = parse_options(argc, argv, &csv, &json, &plotdir, &report);
	if (rc >= 0)
		return rc;
	if (!choose_scenarios(argc, argv, run, &nrun))
		return 2;
	if (opt_idle < 0)
		opt_idle = opt_scale < 1 ? 0 : 6;
	if (!opt_threads) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		opt_threads = n > 0 ? (unsigned)n : 1;
	}
	progress_on = isatty(2);
	peers_load();
	env_collect(argc, argv);
	env_print(stdout);
	for (size_t r = 0; r < opt_repeat * nrun; r++) {
		size_t from = results_count();
		double t0 = now_ns();

		if (opt_repeat > 1 && r % nrun == 0)
			printf("\n-- run %zu of %u\n", r / nrun + 1, opt_repeat);
		results_set_run((unsigned)(r / nrun));
		calib_run(run[r % nrun]->run); /* measures the limit before and after */
		progress("%s", "");
		print_tables(stdout, from);
		printf("  (%s took %.1f s)\n", run[r % nrun]->name, (now_ns() - t0) / 1e9);
	}
	if (opt_repeat > 1)
		print_spread(stdout, opt_repeat);
	if (csv)
		write_csv(csv);
	if (json)
		write_json(json);
	if (plotdir) {
		int n = plot(plotdir);
		if (n)
			printf("\n%d chart(s) written to %s\n", n, plotdir);
	}
	if (report)
		write_report(report, opt_repeat);
	return 0;
}
