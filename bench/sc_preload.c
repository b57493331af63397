/* SPDX-License-Identifier: MIT */
/*
 * preload: unmodified programs that allocate big zeroed buffers, under each
 * allocator.  Workloads (each a child process, timed inside it, so that the
 * interpreter's start-up is not counted):
 *   numpy.zeros 32 MiB / 2 MiB   /usr/bin/python3 (Debian's numpy): an
 *                                 array of zeros, one byte written per
 *                                 4 KiB page, freed; per iteration
 *   node Buffer.alloc 32 MiB      the same with node's Buffer.alloc (freed
 *                                 when node's collector runs)
 * Rows: glibc (no preload), jemalloc, mimalloc and tcmalloc through
 * LD_PRELOAD, and zpage-run (build/libzpage-preload.so).  A child prints the
 * median of its iterations; a row's samples are its rounds, the rows of a
 * workload running in an order that rotates from round to round.  Peak RSS
 * is the child's VmHWM, read by the child at its end.  "vs glibc" divides
 * each row's round by glibc's of the same round.  A workload whose interpreter or module is
 * missing is a note, not a failure.
 *
 * One more row per workload, in the rotation, measured in this process,
 * "bare clear": a reference for what clearing the buffer costs with no
 * program and no allocator around it -- a resident block of the same size
 * (2 MiB-aligned, MADV_HUGEPAGE, as zpage's arena is), cleared whole and
 * then written one byte per 4 KiB page, with zpage's non-temporal and its
 * cached primitive, each for the workload's iterations back to back; the
 * row is the smaller of the two medians (both are in a note).  It is a
 * reference, not a bound: a program's own work overlaps the clear's tail,
 * and clearing page by page just before each write (as the kernel's fault
 * path does) or memory already zero can cost less.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "internal.h"
#include "results.h"

#define SC	"preload"
#define IDLE_S	3

static const char py_script[] =
	"import sys, time\n"
	"import numpy as np\n"
	"n, it = int(sys.argv[1]), int(sys.argv[2]); ts = []\n"
	"for i in range(it):\n"
	"    t0 = time.perf_counter(); a = np.zeros(n, dtype=np.uint8); a[::4096] = 1; del a\n"
	"    ts.append(time.perf_counter() - t0)\n"
	"ts.sort(); med = ts[len(ts) // 2] * 1e6\n"
	"idle = float(sys.argv[3]) if len(sys.argv) > 3 else 0\n"
	"rss = hwm = 0\n"
	"if idle > 0:\n"
	"    time.sleep(idle)\n"
	"for l in open('/proc/self/status'):\n"
	"    if l.startswith('VmRSS:') and idle > 0: rss = int(l.split()[1])\n"
	"    if l.startswith('VmHWM:'): hwm = int(l.split()[1])\n"
	"print(med, rss, hwm)\n";

static const char js_script[] =
	"const n = +process.argv[1], it = +process.argv[2]; const ts = [];"
	"for (let i = 0; i < it; i++) { const t0 = process.hrtime.bigint(); let b = Buffer.alloc(n);"
	" for (let j = 0; j < n; j += 4096) b[j] = 1; b = null;"
	" ts.push(Number(process.hrtime.bigint() - t0) / 1e3); }"
	"ts.sort((x, y) => x - y);"
	"const hwm = /VmHWM:\\s*(\\d+)/.exec(require('fs').readFileSync('/proc/self/status', 'utf8'));"
	"console.log(ts[ts.length >> 1], 0, hwm ? +hwm[1] : 0);";

struct workload {
	const char *name;
	const char *prog; /* interpreter */
	bool python;
	size_t bytes;
	unsigned iters; /* at --scale 1 */
};

static const struct workload loads[] = {
	{"numpy.zeros 32 MiB", "/usr/bin/python3", true, (size_t)32 << 20, 60},
	{"numpy.zeros 2 MiB", "/usr/bin/python3", true, (size_t)2 << 20, 1000},
	{"node Buffer.alloc 32 MiB", "node", false, (size_t)32 << 20, 60},
};
enum { NLOADS = sizeof(loads) / sizeof(loads[0]) };

enum { A_GLIBC, A_JEMALLOC, A_MIMALLOC, A_TCMALLOC, A_ZPAGE, A_BARE, NALLOC };
static const char *const alloc_names[NALLOC] = {"glibc",     "jemalloc", "mimalloc",
						"tcmalloc",  "zpage-run", "bare clear"};

/* The bare clear of @w (the file's comment), round @round: in @both the
 * median us per iteration of the non-temporal and of the cached primitive,
 * over @iters iterations of each; false if no memory. */
static bool bare_clear_us(const struct workload *w, unsigned iters, unsigned round, double both[2])
{
	const size_t huge = (size_t)2 << 20;
	char *map = mmap(NULL, w->bytes + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), *p;
	double *t[2];

	if (map == MAP_FAILED)
		return false;
	p = (char *)(((uintptr_t)map + huge - 1) & ~(uintptr_t)(huge - 1));
	(void)madvise(p, w->bytes, MADV_HUGEPAGE); /* as zpage's arena asks */
	(void)zero_nt_name();			   /* the primitives are chosen at first use */
	memset(p, 0x5a, w->bytes);
	t[0] = xmalloc(iters * sizeof(double));
	t[1] = xmalloc(iters * sizeof(double));
	/* each primitive's iterations back to back, after one untimed, as a
	 * loop reusing one block would run: a cached clear finds the block
	 * where its last iteration left it (in the L3 when it fits) */
	for (unsigned j = 0; j < 2; j++) {
		unsigned m = (j + round) & 1; /* which goes first alternates by round */

		for (unsigned i = 0; i <= iters; i++) {
			double t0 = now_ns();

			(m ? zero_cached : zero_nt)(p, w->bytes);
			for (size_t off = 0; off < w->bytes; off += 4096)
				((volatile char *)p)[off] = 1;
			if (i)
				t[m][i - 1] = (now_ns() - t0) / 1e3;
		}
	}
	both[0] = median(t[0], iters);
	both[1] = median(t[1], iters);
	free(t[0]);
	free(t[1]);
	munmap(map, w->bytes + huge);
	return true;
}

/* Run @w once under @preload (NULL: none): its median us per iteration and
 * its peak RSS in MiB; false if it failed. */
static bool run_child(const struct workload *w, const char *preload, unsigned iters, double idle_s, double *us,
		      double *rss_mib, double *idle_rss_mib)
{
	char nbuf[32], ibuf[32], sbuf[32], out[128] = {0};
	char *end;
	int fd[2], st;
	pid_t pid;
	ssize_t got = 0, r;

	snprintf(nbuf, sizeof(nbuf), "%zu", w->bytes);
	snprintf(ibuf, sizeof(ibuf), "%u", iters);
	snprintf(sbuf, sizeof(sbuf), "%g", idle_s);
	if (pipe(fd))
		return false;
	pid = fork();
	if (pid < 0)
		return false;
	if (pid == 0) {
		dup2(fd[1], 1);
		close(fd[0]);
		close(fd[1]);
		if (preload)
			setenv("LD_PRELOAD", preload, 1);
		else
			unsetenv("LD_PRELOAD");
		if (w->python)
			execl(w->prog, w->prog, "-c", py_script, nbuf, ibuf, sbuf, (char *)NULL);
		else
			execlp(w->prog, w->prog, "-e", js_script, nbuf, ibuf, (char *)NULL);
		_exit(127);
	}
	close(fd[1]);
	while (got < (ssize_t)sizeof(out) - 1 && (r = read(fd[0], out + got, sizeof(out) - 1 - (size_t)got)) > 0)
		got += r;
	close(fd[0]);
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st))
		return false;
	/* "median-us idle-rss-KiB peak-KiB": the peak is the child's own VmHWM;
	 * ru_maxrss would be at least the bench's RSS when it forked (the
	 * forked copy's high-water mark survives the exec) */
	*us = strtod(out, &end);
	if (idle_rss_mib)
		*idle_rss_mib = strtod(end, &end) / 1024;
	else
		(void)strtod(end, &end);
	*rss_mib = strtod(end, NULL) / 1024;
	return *us > 0 && *rss_mib > 0;
}

/* Can @w run at all here (its interpreter, its module)? */
static bool available(const struct workload *w, const char **why)
{
	double us, rss;

	if (run_child(&(struct workload){w->name, w->prog, w->python, 4096, 1}, NULL, 1, 0, &us, &rss, NULL))
		return true;
	*why = w->python ? "/usr/bin/python3 has no numpy (python3-numpy; scripts/deps.sh installs it)"
			 : "node is not installed";
	return false;
}

/* build/libzpage-preload.so beside this program, or NULL */
static char *zpage_preload(void)
{
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash, *path;

	if (n <= 0)
		return NULL;
	exe[n] = 0;
	slash = strrchr(exe, '/');
	if (!slash)
		return NULL;
	*slash = 0;
	path = xasprintf("%s/libzpage-preload.so", exe);
	if (access(path, R_OK)) {
		free(path);
		return NULL;
	}
	return path;
}

void sc_preload(void)
{
	unsigned rounds = opt_scale < 1 ? 2 : 5;
	char *zp = zpage_preload();
	const char *pre[NALLOC] = {NULL, "libjemalloc.so.2", "libmimalloc.so.2", "libtcmalloc.so.4", zp};
	bool have[NALLOC];
	int nrun = 0;

	for (int k = 0; k < NALLOC; k++) {
		have[k] = k == A_GLIBC || k == A_BARE || (k == A_ZPAGE ? zp != NULL : peers[k].available);
		if (!have[k])
			note(SC, "%s: not installed%s", alloc_names[k], k == A_ZPAGE ? " (build/libzpage-preload.so)" : "");
	}
	for (int l = 0; l < NLOADS; l++) {
		const struct workload *w = &loads[l];
		unsigned iters = (unsigned)(w->iters * opt_scale) < 3 ? 3 : (unsigned)(w->iters * opt_scale);
		double us[NALLOC][8], rss[NALLOC][8], ratio[NALLOC][8], idle_rss[NALLOC][1], bare[8][2];
		/* numpy 32 MiB's first round also idles past the report delay, then
		 * reads its RSS: does a program that idles give its memory back? */
		double idle_s = l == 0 ? (double)IDLE_S : 0;
		size_t idx[NALLOC], na = 0;
		bool ok[NALLOC];
		struct rotation rot;
		const char *why;

		if (!available(w, &why)) {
			note(SC, "%s: skipped: %s", w->name, why);
			continue;
		}
		nrun++;
		for (int k = 0; k < NALLOC; k++) {
			ok[k] = have[k];
			if (have[k])
				idx[na++] = (size_t)k;
		}
		rotation_init(&rot, SC, "round", na, rounds);
		for (unsigned r = 0; r < rounds; r++) {
			const size_t *order = rotation_next(&rot);

			for (size_t j = 0; j < na; j++) {
				int k = (int)idx[order[j]];

				progress("preload: %s, %s, round %u/%u", w->name, alloc_names[k], r + 1, rounds);
				if (k == A_BARE) {
					if (ok[k] && !bare_clear_us(w, iters, r, bare[r])) {
						note(SC, "%s, bare clear: no memory for it", w->name);
						ok[k] = false;
					}
					if (ok[k]) /* the row: the faster of the two */
						us[k][r] = bare[r][0] < bare[r][1] ? bare[r][0] : bare[r][1];
					continue;
				}
				if (ok[k] && !run_child(w, pre[k], iters, r == 0 ? idle_s : 0, &us[k][r], &rss[k][r],
							r == 0 ? &idle_rss[k][0] : NULL)) {
					note(SC, "%s under %s: the program failed", w->name, alloc_names[k]);
					ok[k] = false;
				}
			}
		}
		rotation_done(&rot);
		for (int k = 0; k < NALLOC; k++) {
			char *row;

			if (!ok[k])
				continue;
			row = xasprintf("%s, %s", alloc_names[k], w->name);
			result(SC, row, "time per iteration", "us", us[k], rounds);
			if (ok[A_GLIBC]) {
				for (unsigned r = 0; r < rounds; r++)
					ratio[k][r] = us[k][r] / us[A_GLIBC][r];
				result(SC, row, "vs glibc", "paired", ratio[k], rounds);
			}
			if (k == A_BARE) {
				char nt[32], cached[32];
				double v[2][8];

				for (unsigned r = 0; r < rounds; r++)
					v[0][r] = bare[r][0], v[1][r] = bare[r][1];
				fmt_val(nt, sizeof(nt), median(v[0], rounds));
				fmt_val(cached, sizeof(cached), median(v[1], rounds));
				note(SC, "%s, bare clear: median over rounds %s us non-temporal (%s), %s us cached (%s)",
				     w->name, nt, zero_nt_name(), cached, zero_cached_name());
				free(row);
				continue;
			}
			result(SC, row, "peak RSS", "MiB", rss[k], rounds);
			if (idle_s > 0)
				result(SC, row, "RSS after idle", "MiB", idle_rss[k], 1);
			free(row);
		}
		note(SC, "%s: %u iterations a round (one byte written per 4 KiB page), %u rounds", w->name, iters,
		     rounds);
		/* --report reads zpage-run's row against the fastest other allocator's */
		int fast = -1;

		for (int k = A_GLIBC; k <= A_TCMALLOC; k++)
			if (ok[k] && (fast < 0 || median(us[k], rounds) < median(us[fast], rounds)))
				fast = k;
		if (fast >= 0 && ok[A_ZPAGE]) {
			char *zrow = xasprintf("%s, %s", alloc_names[A_ZPAGE], w->name);
			char *frow = xasprintf("%s, %s", alloc_names[fast], w->name);

			counterpart(SC, zrow, frow);
			free(zrow);
			free(frow);
		}
	}
	if (nrun)
		note(SC, "RSS after idle (numpy.zeros 32 MiB, first round only): VmRSS after the loop and %d s asleep, "
			 "past zpage's report delay (2 s): what an idle program keeps", IDLE_S);
	if (nrun)
		note(SC, "each row's sample is one child's median per iteration; 'vs glibc' = that / glibc's in the "
			 "same round; peak RSS is the child's VmHWM (the interpreter included)");
	if (nrun)
		note(SC, "bare clear: in this process, no program and no allocator, a resident block of the size (THP) "
			 "cleared whole with zpage's non-temporal or cached primitive and then written one byte per "
			 "4 KiB page; the smaller median of the two: a reference for what clearing the buffer costs, "
			 "not a bound (a program's work overlaps the clear's tail)");
	free(zp);
}
