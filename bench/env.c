/* SPDX-License-Identifier: MIT */
/*
 * zpage-bench's environment: what produced the figures.  Collected once
 * (env_collect, after the peers are loaded), printed as a short header
 * above the tables (env_print) and written whole into the CSV and JSON
 * (env_count, env_at).  Each field is a key and a text value ("unknown"
 * when it cannot be told); a few are numbers and JSON writes them so.
 *
 *   build       zpage's version and commit (-DZPAGE_VERSION, -DZPAGE_COMMIT
 *               from the Makefile), the compiler (__VERSION__)
 *   run         the command line, the date (UTC), threads, scale, runs
 *   CPU         model (/proc/cpuinfo), the features the clearing engine
 *               looks at (CPUID: ERMS, FSRM, AVX2, AVX-512F) and the
 *               primitives it chose (zero_cached_name, zero_small_name, zero_nt_name)
 *   machine     cores online / configured / this process may use, MemTotal
 *   kernel      release (uname), THP enabled and defrag (the bracketed
 *               value of /sys/kernel/mm/transparent_hugepage/...)
 *   VM          hypervisor present (the cpuinfo "hypervisor" flag, CPUID
 *               0x40000000's signature, /sys/hypervisor/type), free page
 *               reporting (below)
 *   peers       each library's version as it reports it: glibc
 *               gnu_get_libc_version(), jemalloc mallctl("version"),
 *               mimalloc mi_version(), tcmalloc tc_version()
 *   settings    the environment variables that change how an allocator
 *               here behaves (allocator_settings(), below), or "none
 *               set".  A peer's policy shows in its rows (tcmalloc's
 *               release of free memory to the OS moved churn's one-thread
 *               ratio by about 3 points in one set, p = 0.03: README), so
 *               a run with one changed must say so, and `zpage-bench
 *               compare` lists the field when two sets differ
 *
 * Free page reporting (the guest handing freed memory to the host, which
 * discards it): active when a virtio-balloon device bound to its driver
 * negotiated VIRTIO_BALLOON_F_REPORTING (bit 5 of the device's "features"
 * in sysfs, a string of 0/1 with bit 0 first).  Without such a device it
 * is "no" on bare metal and "unknown" in a VM (another hypervisor may
 * have its own way).
 */
#include <dirent.h>
#include <dlfcn.h>
#include <gnu/libc-version.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <strings.h> /* strncasecmp */
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h> /* environ: _GNU_SOURCE */
#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include "internal.h" /* zero_cached_name, zero_small_name, zero_nt_name */
#include "results.h"

#ifndef ZPAGE_VERSION
#define ZPAGE_VERSION "unknown"
#endif
#ifndef ZPAGE_COMMIT
#define ZPAGE_COMMIT "unknown"
#endif
#if defined(__clang__) || !defined(__GNUC__)
#define COMPILER __VERSION__ /* clang's says "clang" */
#else
#define COMPILER "gcc " __VERSION__
#endif

static struct env_field *fields;
static size_t nfields, capfields;

size_t env_count(void)
{
	return nfields;
}

const struct env_field *env_at(size_t i)
{
	return &fields[i];
}

static void add(const char *key, bool number, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void add(const char *key, bool number, const char *fmt, ...)
{
	va_list ap;

	GROW(fields, capfields, nfields + 1);
	va_start(ap, fmt);
	fields[nfields++] = (struct env_field){.key = key, .value = xvasprintf(fmt, ap), .number = number};
	va_end(ap);
}

const char *env_value(const char *key)
{
	for (size_t i = 0; i < nfields; i++)
		if (!strcmp(fields[i].key, key))
			return fields[i].value;
	return "unknown";
}

/* The first line of @path without its newline, or NULL. */
static char *first_line(const char *path)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	if (!f)
		return NULL;
	n = getline(&line, &cap, f);
	fclose(f);
	if (n <= 0) {
		free(line);
		return NULL;
	}
	line[strcspn(line, "\n")] = '\0';
	return line;
}

/* The value of the first line "@key<spaces or tabs>: value" of @path, or NULL. */
static char *keyed_value(const char *path, const char *key)
{
	FILE *f = fopen(path, "r");
	char *line = NULL, *v = NULL;
	size_t cap = 0, len = strlen(key);

	while (f && !v && getline(&line, &cap, f) > 0) {
		char *p = line + len;

		if (strncmp(line, key, len))
			continue;
		p += strspn(p, " \t");
		if (*p++ != ':')
			continue;
		p += strspn(p, " \t");
		p[strcspn(p, "\n")] = '\0';
		v = xstrdup(p);
	}
	free(line);
	if (f)
		fclose(f);
	return v;
}

static bool has_word(const char *list, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = list; p && (p = strstr(p, word)); p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == ' ' || !p[n]))
			return true;
	return false;
}

/* THP's enabled / defrag: the bracketed choice. */
static void thp(const char *key, const char *file)
{
	char *path = xasprintf("/sys/kernel/mm/transparent_hugepage/%s", file);
	char *s = first_line(path), *open = s ? strchr(s, '[') : NULL, *close = open ? strchr(open, ']') : NULL;

	if (close)
		add(key, false, "%.*s", (int)(close - open - 1), open + 1);
	else
		add(key, false, "%s", s ? s : "unavailable");
	free(s);
	free(path);
}

static void cpu(void)
{
	char *model = keyed_value("/proc/cpuinfo", "model name");
	const char *names[] = {"ERMS", "FSRM", "AVX2", "AVX-512F"};
	bool has[4] = {false};
	char list[64] = "";

	add("cpu_model", false, "%s", model ? model : "unknown");
	free(model);
#if defined(__x86_64__)
	unsigned a, b, c, d;

	if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
		has[0] = b & (1u << 9);
		has[1] = d & (1u << 4);
	}
	has[2] = __builtin_cpu_supports("avx2"); /* these two also check that the OS saves the registers */
	has[3] = __builtin_cpu_supports("avx512f");
	for (int i = 0; i < 4; i++)
		if (has[i])
			snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", *list ? " " : "", names[i]);
	add("cpu_features", false, "%s", *list ? list : "none of ERMS FSRM AVX2 AVX-512F");
#else
	(void)names;
	(void)has;
	(void)list;
	add("cpu_features", false, "not x86-64");
#endif
	add("clear_cached", false, "%s", zero_cached_name());
	add("clear_cached_small", false, "%s for hot blocks up to %zu KiB", zero_small_name(), SMALL_CACHED_MAX >> 10);
	add("clear_nt", false, "%s", zero_nt_name());
}

static void machine(void)
{
	cpu_set_t set;
	char *mem = keyed_value("/proc/meminfo", "MemTotal");
	struct utsname u;

	add("cores_online", true, "%ld", sysconf(_SC_NPROCESSORS_ONLN));
	add("cores_configured", true, "%ld", sysconf(_SC_NPROCESSORS_CONF));
	if (!sched_getaffinity(0, sizeof(set), &set))
		add("cores_allowed", true, "%d", CPU_COUNT(&set));
	add("memory_total_kib", true, "%lld", mem ? atoll(mem) : 0); /* "24684096 kB" */
	free(mem);
	if (!uname(&u)) {
		add("kernel_release", false, "%s", u.release);
		add("arch", false, "%s", u.machine);
	}
	thp("thp_enabled", "enabled");
	thp("thp_defrag", "defrag");
}

/* "yes (CPUID signature, /sys/hypervisor/type)", "no" or "unknown"; true
 * when a hypervisor is seen or none can be ruled out. */
static bool hypervisor(void)
{
	char *flags = keyed_value("/proc/cpuinfo", "flags"), *type = first_line("/sys/hypervisor/type");
	char sig[13] = "";
	bool yes = has_word(flags, "hypervisor") || type;

#if defined(__x86_64__)
	unsigned a, b, c, d;

	__cpuid(1, a, b, c, d);
	if (c & (1u << 31)) { /* the CPUID hypervisor bit */
		yes = true;
		__cpuid(0x40000000, a, b, c, d);
		memcpy(sig, &b, 4);
		memcpy(sig + 4, &c, 4);
		memcpy(sig + 8, &d, 4);
		for (int i = 0; i < 12; i++)
			if (sig[i] && (sig[i] < 0x20 || sig[i] > 0x7e))
				sig[i] = '?';
	}
#endif
	if (yes && (*sig || type))
		add("hypervisor", false, "yes (%s%s%s)", sig, *sig && type ? ", " : "", type ? type : "");
	else
		add("hypervisor", false, "%s", yes ? "yes" : flags ? "no" : "unknown");
	yes |= !flags; /* cannot tell: maybe */
	free(flags);
	free(type);
	return yes;
}

static void page_reporting(bool vm)
{
	const char *drv = "/sys/bus/virtio/drivers/virtio_balloon";
	DIR *d = opendir(drv);
	struct dirent *e;
	char *order = first_line("/sys/module/page_reporting/parameters/page_reporting_order"), *what = NULL;

	while (d && !what && (e = readdir(d))) {
		char *path, *feat;

		if (strncmp(e->d_name, "virtio", 6))
			continue;
		path = xasprintf("%s/%s/features", drv, e->d_name);
		feat = first_line(path);
		if (!feat || strlen(feat) < 6 || strspn(feat, "01") != strlen(feat))
			what = xasprintf("unknown (%s unreadable)", path);
		else if (feat[5] == '1')
			what = xasprintf("yes (virtio-balloon %s negotiated VIRTIO_BALLOON_F_REPORTING%s%s)", e->d_name,
					 order ? "; page_reporting_order " : "", order ? order : "");
		else
			what = xasprintf("no (virtio-balloon %s without VIRTIO_BALLOON_F_REPORTING)", e->d_name);
		free(feat);
		free(path);
	}
	if (d)
		closedir(d);
	if (!what)
		what = xstrdup(vm ? "unknown (no virtio-balloon device)" : "no (not a VM)");
	add("free_page_reporting", false, "%s", what);
	free(what);
	free(order);
}

/* A symbol of a peer that peers_load() loaded, or NULL. */
static void *peer_sym(int i, const char *lib, const char *name)
{
	void *h = peers[i].available ? dlopen(lib, RTLD_NOW | RTLD_NOLOAD) : NULL;

	return h ? dlsym(h, name) : NULL;
}

static void peer_versions(void)
{
	static const char *const keys[NR_PEERS] = {"glibc_version", "jemalloc_version", "mimalloc_version",
						   "tcmalloc_version"};
	int (*mallctl)(const char *, void *, size_t *, void *, size_t);
	int (*mi_version)(void);
	const char *(*tc_version)(int *, int *, const char **);
	const char *v = NULL;
	size_t len = sizeof(v);
	int major, minor;

	add(keys[PEER_GLIBC], false, "%s", gnu_get_libc_version());
	for (int i = PEER_JEMALLOC; i < NR_PEERS; i++) {
		if (!peers[i].available) {
			add(keys[i], false, "not installed (%s)", peers[i].why);
			continue;
		}
		if (i == PEER_JEMALLOC && (*(void **)&mallctl = peer_sym(i, "libjemalloc.so.2", "mallctl")) &&
		    !mallctl("version", &v, &len, NULL, 0) && v) {
			add(keys[i], false, "%s", v);
		} else if (i == PEER_MIMALLOC && (*(void **)&mi_version = peer_sym(i, "libmimalloc.so.2", "mi_version"))) {
			int n = mi_version(); /* 212 = 2.1.2 */
			add(keys[i], false, "%d.%d.%d", n / 100, n / 10 % 10, n % 10);
		} else if (i == PEER_TCMALLOC && (*(void **)&tc_version = peer_sym(i, "libtcmalloc.so.4", "tc_version"))) {
			add(keys[i], false, "%s", tc_version(&major, &minor, &v));
		} else {
			add(keys[i], false, "unknown (the library does not say)");
		}
	}
}

/*
 * The settings in the environment that change how an allocator here
 * behaves, as NAME=value separated by spaces and sorted (so that two runs
 * with the same settings say the same): zpage's ZPAGE_* (but the bench's
 * own ZPAGE_BENCH_*), tcmalloc's TCMALLOC_*, HEAPPROFILE and HEAPCHECK
 * (gperftools' profiler and checker start from them), mimalloc's
 * MIMALLOC_* (which it matches in any case), glibc's MALLOC_* and
 * jemalloc's MALLOC_CONF and JE_MALLOC_CONF, LD_PRELOAD (which can put
 * another allocator under the glibc rows), and each entry of
 * GLIBC_TUNABLES (malloc, memset's thresholds, lock elision) but the one
 * the bench adds when it re-executes itself (main.c); an empty value is
 * the default and not listed.  "none set" when there is none of them.
 * jemalloc's /etc/malloc.conf, a file, is not looked at.
 */
static int cmp_str(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

static void allocator_settings(void)
{
	static const char *const names[] = {"ZPAGE_", "TCMALLOC_", "MALLOC_", "JE_MALLOC_CONF=", "HEAPPROFILE=",
					    "HEAPCHECK=", "LD_PRELOAD="};
	char **set, *list = xstrdup("");
	size_t n = 0, cap = 0;

	for (char **e = environ; *e; e++) { /* an entry each at most, a tunable each */
		cap++;
		for (const char *c = *e; !strncmp(*e, "GLIBC_TUNABLES=", 15) && *c; c++)
			cap += *c == ':';
	}
	set = xmalloc((cap + 1) * sizeof(*set));
	for (char **e = environ; *e; e++) {
		const char *v = *e, *eq = strchr(v, '=');
		bool keep = !strncasecmp(v, "MIMALLOC_", 9);

		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			keep |= !strncmp(v, names[i], strlen(names[i]));
		if (!strncmp(v, "ZPAGE_BENCH_", 12) || !eq || !eq[1])
			keep = false;
		if (!strncmp(v, "GLIBC_TUNABLES=", 15)) {
			char *t = xstrdup(v + 15), *save = NULL;
			bool reexec = getenv("ZPAGE_BENCH_REEXEC") != NULL;

			for (char *tok = strtok_r(t, ":", &save); tok; tok = strtok_r(NULL, ":", &save)) {
				const char *teq = strchr(tok, '=');

				if (reexec && !strcmp(tok, REEXEC_TUNABLE)) {
					reexec = false; /* the bench's own, once */
					continue;
				}
				if (teq && teq[1]) /* an empty value is the default */
					set[n++] = xstrdup(tok);
			}
			free(t);
		} else if (keep) {
			set[n++] = xstrdup(v);
		}
	}
	if (n)
		qsort(set, n, sizeof(*set), cmp_str);
	for (size_t i = 0; i < n; i++) {
		char *l = xasprintf("%s%s%s", list, i ? " " : "", set[i]);

		free(list);
		free(set[i]);
		list = l;
	}
	free(set);
	add("allocator_settings", false, "%s", n ? list : "none set");
	free(list);
}

void env_collect(int argc, char **argv)
{
	char date[32], *cmd = xstrdup("zpage-bench");
	time_t t = time(NULL);
	struct tm tm;

	add("zpage_version", false, "%s", ZPAGE_VERSION);
	add("zpage_commit", false, "%s", ZPAGE_COMMIT);
	add("compiler", false, "%s", COMPILER);
	for (int i = 1; i < argc; i++) {
		char *c = xasprintf("%s %s", cmd, argv[i]);
		free(cmd);
		cmd = c;
	}
	add("command", false, "%s", cmd);
	free(cmd);
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
	add("date", false, "%s", date);
	add("threads", true, "%u", opt_threads);
	add("scale", true, "%g", opt_scale);
	add("runs", true, "%u", opt_repeat);
	cpu();
	machine();
	page_reporting(hypervisor());
	peer_versions();
	allocator_settings();
}

void env_print(FILE *f)
{
	long long kib = atoll(env_value("memory_total_kib"));

	fprintf(f, "zpage-bench %s (commit %s), %s; %s threads, scale %s, %s run%s\n", env_value("zpage_version"),
		env_value("zpage_commit"), env_value("compiler"), env_value("threads"), env_value("scale"), env_value("runs"),
		opt_repeat > 1 ? "s" : "");
	fprintf(f, "cpu: %s, %s cores online of %s (%s allowed), %.1f GiB; %s; clears: %s cached (%s), %s non-temporal\n",
		env_value("cpu_model"), env_value("cores_online"), env_value("cores_configured"), env_value("cores_allowed"), kib / 1048576.0,
		env_value("cpu_features"), env_value("clear_cached"), env_value("clear_cached_small"), env_value("clear_nt"));
	fprintf(f, "kernel %s %s; THP enabled %s, defrag %s; hypervisor: %s; free page reporting: %s\n",
		env_value("kernel_release"), env_value("arch"), env_value("thp_enabled"), env_value("thp_defrag"), env_value("hypervisor"),
		env_value("free_page_reporting"));
	fprintf(f, "peers: glibc %s, jemalloc %s, mimalloc %s, tcmalloc %s; allocator settings: %s\n",
		env_value("glibc_version"), env_value("jemalloc_version"), env_value("mimalloc_version"),
		env_value("tcmalloc_version"), env_value("allocator_settings"));
	fflush(f);
}
