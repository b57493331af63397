/* SPDX-License-Identifier: MIT */
/*
 * The OS boundary (src/os.c, src/env.c): every ZPAGE_* variable against a
 * matrix of hostile values, the background thread's signal mask, the
 * MADV_DONTNEED self-test when two arenas are created at once, transparent
 * huge pages on and off, a failed thread start leaving nothing behind,
 * libzpage.so unloaded while a thread that used it lives on, and an arena
 * created under mlockall(MCL_FUTURE).
 * (The timed wait against a wall-clock jump is in test_clock.c: it
 * interposes clock_gettime for the whole binary.)
 *
 * Tests that need a fresh process (the once-per-process messages, the
 * once-per-process self-test) or that may crash run in a forked child whose
 * stderr comes back through a pipe and whose results come back through a
 * shared anonymous mapping; the parent judges them.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <libgen.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

#define MiB ((size_t)1 << 20)

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static pid_t my_tid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/* ---- running a piece of a test in a forked child ---- */

struct child {
	pid_t pid;
	int fd;	    /* the read end of the child's stderr */
	int status; /* from waitpid */
	char *err;  /* everything the child wrote on stderr (malloc'd, NUL-terminated) */
	size_t len;
};

/*
 * Fork; the child runs @fn(@arg) with stderr on a pipe, then exits 0 (with
 * exit() when @run_atexit, so that a sanitizer's exit-time checks run and
 * set the exit status; otherwise _exit()).  A child that hangs is killed by
 * SIGALRM after 20 s.  child_finish() collects it.  Returns false if fork
 * or pipe failed.
 */
static bool child_start(void (*fn)(void *), void *arg, bool run_atexit, struct child *out)
{
	int fds[2];

	out->err = NULL;
	out->len = 0;
	if (pipe(fds))
		return false;
	fflush(stdout);
	fflush(stderr);
	out->pid = fork();
	if (out->pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return false;
	}
	if (out->pid == 0) {
		close(fds[0]);
		dup2(fds[1], STDERR_FILENO);
		close(fds[1]);
		alarm(20);
		fn(arg);
		if (run_atexit)
			exit(0);
		_exit(0);
	}
	close(fds[1]);
	out->fd = fds[0];
	return true;
}

/* Read the child's stderr to the end and wait for it. */
static void child_finish(struct child *c)
{
	size_t cap = 4096;

	c->err = malloc(cap);
	for (;;) {
		ssize_t n;

		if (c->len + 1024 > cap)
			c->err = realloc(c->err, cap *= 2);
		n = read(c->fd, c->err + c->len, cap - c->len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		c->len += (size_t)n;
	}
	c->err[c->len] = 0;
	close(c->fd);
	while (waitpid(c->pid, &c->status, 0) < 0 && errno == EINTR)
		;
}

static bool run_in_child(void (*fn)(void *), void *arg, bool run_atexit, struct child *out)
{
	if (!child_start(fn, arg, run_atexit, out))
		return false;
	child_finish(out);
	return true;
}

/* "exited 0", or what else happened to the child, in @buf. */
static bool child_ok(const struct child *c, char *buf, size_t n)
{
	if (WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0)
		return true;
	if (WIFSIGNALED(c->status))
		snprintf(buf, n, "child killed by signal %d (%s)", WTERMSIG(c->status), strsignal(WTERMSIG(c->status)));
	else
		snprintf(buf, n, "child exited with status %d", WEXITSTATUS(c->status));
	return false;
}

/* The first @max lines of what the child wrote on stderr, indented. */
static void show_child_err(const struct child *c, int max)
{
	const char *p = c->err;
	int n = 0;

	while (*p && n < max) {
		size_t len = strcspn(p, "\n");

		T_DIAG("    | %.*s%s", (int)(len > 200 ? 200 : len), p, len > 200 ? "..." : "");
		p += len + (p[len] == '\n');
		n++;
	}
	if (*p)
		T_DIAG("    | (more)");
}

static void *shared_page(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		T_DIAG("mmap: %s", strerror(errno));
		abort();
	}
	return p;
}

/* ---- 1. environment_matrix ---- */

/* The variables and their ranges as include/zpage.h documents them. */
enum { V_DELAY, V_ORDER, V_BYTES, V_RATE, NR_VARS };
static const struct {
	const char *name;
	uint64_t min, max;
	bool bytes; /* K/M/G suffix allowed */
} vars[NR_VARS] = {
	[V_DELAY] = {"ZPAGE_REPORT_DELAY_MS", 1, 86400000, false},
	[V_ORDER] = {"ZPAGE_REPORT_ORDER", 1, ZP_MAX_ORDER_LIMIT, false},
	[V_BYTES] = {"ZPAGE_PREZERO_BYTES", 0, (uint64_t)1 << 46, true},
	[V_RATE] = {"ZPAGE_PREZERO_RATE_MB", 1, 1048576, false},
};

/* The defaults (src/arena.c). */
#define DEF_DELAY_MS 2000u
#define DEF_ORDER    9u
#define DEF_RATE_MB  1024u

/* The configurations every case creates; each must succeed. */
#define NCFG 5
static const struct zp_config env_cfgs[NCFG] = {
	{0}, /* stands for NULL: passed as NULL below */
	{.max_order = 4},
	{.max_order = 4, .flags = ZP_PREZERO | ZP_REPORT},
	{.size = 2 * MiB, .max_order = 9},
	/* a pre-zero thread with work: its rate cap divides by the rate */
	{.size = 1 * MiB, .max_order = 4, .flags = ZP_PREZERO, .prezero_bytes = 64 << 10},
};
static const unsigned env_cfg_max_order[NCFG] = {10, 4, 4, 9, 4};

/* What a value means: as a plain decimal, and as a byte count with suffix. */
enum kind { K_EMPTY, K_NUM, K_BAD };
struct hval {
	const char *s;
	enum kind dk;
	uint64_t d;
	enum kind bk;
	uint64_t b;
};
/* clang-format off */
#define NUM(str, x)   {str, K_NUM, (x), K_NUM, (x)}
#define BAD(str)      {str, K_BAD, 0, K_BAD, 0}
#define SUFFIX(str, x) {str, K_BAD, 0, K_NUM, (x)}

static char long_zeros[4097], long_nines[4097], long_junk[4097];

static const struct hval hostile[] = {
	{"", K_EMPTY, 0, K_EMPTY, 0},
	NUM("0", 0),
	NUM("1", 1),
	BAD("-1"),
	BAD("+5"),
	BAD(" 5"),
	BAD("5 "),
	NUM("010", 10), /* decimal, not octal */
	BAD("0x10"),
	BAD("1e3"),
	BAD("abc"),
	NUM("18446744073709551615", UINT64_MAX), /* fits, out of every range */
	BAD("18446744073709551616"),		 /* 2^64: overflows */
	NUM("4294967296", (uint64_t)1 << 32),
	NUM("17592186044416", (uint64_t)1 << 44), /* MiB << 20 would wrap to 0 */
	BAD("99999999999999999999999"),
	SUFFIX("1K", 1024),
	SUFFIX("1k", 1024),
	SUFFIX("4M", (uint64_t)4 << 20),
	SUFFIX("2G", (uint64_t)2 << 30),
	BAD("1T"),
	BAD("3KB"),
	SUFFIX("65536G", (uint64_t)1 << 46),		   /* the byte maximum, by suffix */
	SUFFIX("65537G", ((uint64_t)1 << 46) + (1u << 30)), /* and one GiB over */
	BAD("18014398509481984K"),			   /* 2^54 KiB: the shift overflows */
	{long_zeros, K_NUM, 7, K_NUM, 7},		   /* 4095 leading zeros, then 7 */
	{long_nines, K_BAD, 0, K_BAD, 0},
	{long_junk, K_BAD, 0, K_BAD, 0},
};
/* clang-format on */
#define NR_HOSTILE (sizeof(hostile) / sizeof(hostile[0]))

struct env_res {
	int created[NCFG], err[NCFG];
	unsigned delay[NCFG], order[NCFG];
	uint64_t bytes[NCFG], rate[NCFG];
	bool check_ok[NCFG];
	bool prezeroed; /* config 4's thread cleared something */
};

struct env_case {
	int var;
	const char *value; /* what the child sets */
	enum kind kind;	   /* what it means for this variable */
	uint64_t v;
	struct env_res *res; /* in shared memory */
	struct child c;
};

static void dirty_free(struct zp_arena *a, unsigned order, int n)
{
	void *p[16];

	for (int i = 0; i < n; i++) {
		p[i] = zp_alloc_pages(a, 0, order, ZP_USER_ADDR_NONE);
		if (p[i])
			memset(p[i], 0x5a, ZP_PAGE_SIZE << order);
	}
	for (int i = 0; i < n; i++)
		if (p[i])
			zp_free_pages(a, p[i], order);
}

static void env_child(void *arg)
{
	struct env_case *ec = arg;
	struct env_res *r = ec->res;

	for (int v = 0; v < NR_VARS; v++)
		unsetenv(vars[v].name);
	setenv(vars[ec->var].name, ec->value, 1);
	for (int k = 0; k < NCFG; k++) {
		struct zp_arena *a;

		errno = 0;
		a = zp_arena_create(k == 0 ? NULL : &env_cfgs[k]);
		r->created[k] = a != NULL;
		r->err[k] = errno;
		if (!a)
			continue;
		r->delay[k] = a->report_delay_ms;
		r->order[k] = a->report_order;
		r->bytes[k] = a->prezero_bytes;
		r->rate[k] = a->prezero_rate;
		if (k == 2 || k == 4)
			dirty_free(a, 4, k == 2 ? 4 : 8);
		if (k == 4) {
			uint64_t t0 = mono_ms();

			while (!t_stats(a).pages_prezeroed && mono_ms() - t0 < 2000)
				sleep_ms(1);
			r->prezeroed = t_stats(a).pages_prezeroed > 0;
		}
		/* the small arena that did some work (checking 1 GiB costs ~15 ms under TSan) */
		r->check_ok[k] = k != 4 || zp_arena_check(a) == 0;
		zp_arena_destroy(a);
	}
}

/* Printable form of a value (the long ones abbreviated). */
static const char *shown(const char *s, char *buf, size_t n)
{
	if (strlen(s) <= 40)
		snprintf(buf, n, "\"%s\"", s);
	else
		snprintf(buf, n, "\"%.12s...\" (%zu chars)", s, strlen(s));
	return buf;
}

#define APPEND(buf, ...) snprintf((buf) + strlen(buf), sizeof(buf) - strlen(buf), __VA_ARGS__)

/* Lines of @err starting with "zpage:", and the other non-empty lines. */
static void count_lines(const char *err, int *zpage_lines, int *other_lines, const char **first_zpage)
{
	const char *p = err;

	*zpage_lines = *other_lines = 0;
	*first_zpage = NULL;
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);

		if (!strncmp(p, "zpage:", 6)) {
			if (!*first_zpage)
				*first_zpage = p;
			++*zpage_lines;
		} else if (len) {
			++*other_lines;
		}
		p += len + (nl != NULL);
	}
}

/* Does the message line at @line (up to its newline) name @var and its range? */
static bool names_range(const char *line, int var, const char *value)
{
	size_t len = strcspn(line, "\n");
	char *l = strndup(line, len), num[32], *rest;
	bool ok;

	rest = strstr(l, vars[var].name);
	ok = rest != NULL;
	if (ok) {
		rest += strlen(vars[var].name);
		if (!strncmp(rest, "=", 1) && !strncmp(rest + 1, value, strlen(value)))
			rest += 1 + strlen(value); /* past the value itself */
		snprintf(num, sizeof(num), "%llu", (unsigned long long)vars[var].min);
		ok = strstr(rest, num) != NULL;
		snprintf(num, sizeof(num), "%llu", (unsigned long long)vars[var].max);
		ok = ok && strstr(rest, num) != NULL;
	}
	free(l);
	return ok;
}

/* Judge one finished case. */
static void env_case_check(struct env_case *ec)
{
	int var = ec->var;
	const char *value = ec->value;
	uint64_t v = ec->v;
	struct env_res *r = ec->res;
	struct child c = ec->c;
	char why[2048] = "", tmp[64], vbuf[64];
	bool valid = ec->kind == K_NUM && v >= vars[var].min && v <= vars[var].max;
	bool invalid = ec->kind != K_EMPTY && !valid;
	bool clamp = false;
	int zl, ol;
	const char *line;

	if (!child_ok(&c, tmp, sizeof(tmp)))
		APPEND(why, " %s;", tmp);
	for (int k = 0; k < NCFG; k++) {
		unsigned mo = env_cfg_max_order[k];
		uint64_t e_delay = var == V_DELAY && valid ? v : DEF_DELAY_MS;
		uint64_t e_order = mo < DEF_ORDER ? mo : DEF_ORDER;
		uint64_t e_bytes = var == V_BYTES && valid ? v : 0;
		uint64_t e_rate = (var == V_RATE && valid ? v : DEF_RATE_MB) << 20;

		if (env_cfgs[k].prezero_bytes)
			e_bytes = env_cfgs[k].prezero_bytes; /* an explicit field wins */
		if (var == V_ORDER && valid) {
			e_order = v > mo ? mo : v;
			clamp |= v > mo;
		}
		if (!WIFEXITED(c.status) || WEXITSTATUS(c.status))
			break; /* said above; the fields may be missing */
		if (!r->created[k]) {
			APPEND(why, " config %d: create failed (%s);", k, strerror(r->err[k]));
			continue;
		}
		if (r->delay[k] != e_delay)
			APPEND(why, " config %d: report_delay_ms %u, expected %llu;", k, r->delay[k],
			       (unsigned long long)e_delay);
		if (r->order[k] != e_order)
			APPEND(why, " config %d: report_order %u, expected %llu;", k, r->order[k],
			       (unsigned long long)e_order);
		if (r->bytes[k] != e_bytes)
			APPEND(why, " config %d: prezero_bytes %llu, expected %llu;", k,
			       (unsigned long long)r->bytes[k], (unsigned long long)e_bytes);
		if (r->rate[k] != e_rate)
			APPEND(why, " config %d: prezero_rate %llu, expected %llu;", k, (unsigned long long)r->rate[k],
			       (unsigned long long)e_rate);
		if (!r->check_ok[k])
			APPEND(why, " config %d: zp_arena_check failed;", k);
	}
	if (WIFEXITED(c.status) && !WEXITSTATUS(c.status) && r->created[4] && !r->prezeroed)
		APPEND(why, " config 4: the pre-zero thread cleared nothing in 2 s;");

	count_lines(c.err, &zl, &ol, &line);
	if (ol)
		APPEND(why, " %d unexpected stderr line(s);", ol);
	if (invalid) {
		if (zl != 1)
			APPEND(why, " %d \"zpage:\" lines, expected exactly 1 for an invalid value;", zl);
		else if (!names_range(line, var, value))
			APPEND(why, " the message does not name %s and its range %llu..%llu;", vars[var].name,
			       (unsigned long long)vars[var].min, (unsigned long long)vars[var].max);
	} else if (clamp) {
		if (zl != 1)
			APPEND(why, " %d \"zpage:\" lines, expected exactly 1 clamping message;", zl);
		else if (!strstr(line, vars[var].name) || !strstr(line, "max_order"))
			APPEND(why, " the clamping message does not name %s and max_order;", vars[var].name);
	} else if (zl) {
		APPEND(why, " %d \"zpage:\" line(s) for a valid value;", zl);
	}
	if (why[0]) {
		const char *what = invalid ? "invalid" : clamp ? "valid, clamped" : "valid";

		T_REPORT("%s=%s (%s):%s", vars[var].name, shown(value, vbuf, sizeof(vbuf)), what, why);
		show_child_err(&c, 3);
	}
	free(c.err);
}

static void environment_matrix(void)
{
	enum { PER_VAR = NR_HOSTILE + 2, NR_CASES = NR_VARS * PER_VAR };
	struct env_res *res = shared_page(NR_CASES * sizeof(*res));
	static struct env_case cases[NR_CASES];
	static char maxs[NR_VARS][32], over[NR_VARS][32];
	/* children run a few at a time: one case costs ~100 ms of CPU under TSan */
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned par = ncpu > 0 ? 2 * (unsigned)ncpu : 2, done = 0;

	if (par > 8)
		par = 8;
	memset(long_zeros, '0', 4095);
	long_zeros[4095] = '7';
	memset(long_nines, '9', 4096);
	memset(long_junk, 'x', 4096);
	for (int var = 0; var < NR_VARS; var++) {
		struct env_case *ec = &cases[var * PER_VAR];

		for (size_t i = 0; i < NR_HOSTILE; i++) {
			const struct hval *h = &hostile[i];

			ec[i] = (struct env_case){var, h->s, vars[var].bytes ? h->bk : h->dk,
						  vars[var].bytes ? h->b : h->d};
		}
		/* the top of the range, and one past it */
		snprintf(maxs[var], sizeof(maxs[var]), "%llu", (unsigned long long)vars[var].max);
		snprintf(over[var], sizeof(over[var]), "%llu", (unsigned long long)vars[var].max + 1);
		ec[NR_HOSTILE] = (struct env_case){var, maxs[var], K_NUM, vars[var].max};
		ec[NR_HOSTILE + 1] = (struct env_case){var, over[var], K_NUM, vars[var].max + 1};
	}
	for (unsigned i = 0; i < NR_CASES; i++) {
		cases[i].res = &res[i];
		if (i - done == par) {
			child_finish(&cases[done].c);
			env_case_check(&cases[done++]);
		}
		if (!child_start(env_child, &cases[i], false, &cases[i].c)) {
			T_REPORT("fork: %s", strerror(errno));
			break;
		}
	}
	while (done < NR_CASES && cases[done].c.pid > 0) {
		child_finish(&cases[done].c);
		env_case_check(&cases[done++]);
	}
	munmap(res, NR_CASES * sizeof(*res));
}

/* ---- 2. background_thread_blocks_signals ---- */

static _Atomic pid_t usr1_tid;
static atomic_int usr1_count;

static void on_usr1(int sig)
{
	(void)sig;
	usr1_tid = my_tid();
	usr1_count++;
}

/* The thread ids of this process, in @tids (at most @max); returns how many. */
static int list_tasks(pid_t *tids, int max)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)) && n < max)
		if (e->d_name[0] != '.')
			tids[n++] = (pid_t)atoi(e->d_name);
	closedir(d);
	return n;
}

/* SigBlk of a thread of this process; false if it cannot be read. */
static bool task_sigblk(pid_t tid, uint64_t *mask)
{
	char path[64], line[256];
	FILE *f;
	bool found = false;

	snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)tid);
	f = fopen(path, "r");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "SigBlk:", 7)) {
			*mask = strtoull(line + 7, NULL, 16);
			found = true;
		}
	fclose(f);
	return found;
}

static bool sig_in(uint64_t mask, int sig)
{
	return (mask >> (sig - 1)) & 1;
}

static bool fault_signal(int sig)
{
	return sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL || sig == SIGTRAP || sig == SIGSYS;
}

static void background_thread_blocks_signals(void)
{
	struct zp_config cfg = {.size = 4 * MiB, .max_order = 9, .flags = ZP_REPORT};
	struct sigaction sa = {0}, old_sa;
	sigset_t usr1, old_mask;
	pid_t before[256], after[256], main_tid = my_tid();
	int nb, na, nnew = 0;
	struct zp_arena *a;
	uint64_t t0;
	char open_sigs[256];

	/*
	 * The application creates the arena while SIGUSR1 is unblocked in its
	 * (only) thread and blocks it afterwards, to take it synchronously
	 * later: a library thread that inherited the creator's mask would
	 * still take it.  (Created with SIGUSR1 already blocked, an inherited
	 * mask would hide the difference.)
	 */
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_UNBLOCK, &usr1, &old_mask);
	nb = list_tasks(before, 256);
	a = zp_arena_create(&cfg);
	ASSERT(a);
	/*
	 * Until the new thread has run its start-up, glibc keeps every signal
	 * blocked in it (pthread_create() sets the creator's mask in the new
	 * thread at its start): read SigBlk once it has gone to sleep.
	 */
	t0 = mono_ms();
	while (!zp_test_daemon_sleeps(a) && mono_ms() - t0 < 2000)
		sleep_ms(1);
	EXPECT(zp_test_daemon_sleeps(a) >= 1);
	na = list_tasks(after, 256);
	ASSERT(nb > 0 && na > nb);

	/* Every thread the creation started blocks every blockable signal but
	 * the synchronous fault signals, which must stay open: blocked, a fault
	 * in that thread would kill the process instead of reaching the
	 * application's handler. */
	for (int i = 0; i < na; i++) {
		bool old = false;
		uint64_t m = 0;

		for (int j = 0; j < nb; j++)
			old |= after[i] == before[j];
		if (old)
			continue;
		nnew++;
		if (!task_sigblk(after[i], &m)) {
			T_REPORT("cannot read SigBlk of task %d", (int)after[i]);
			continue;
		}
		EXPECT(sig_in(m, SIGUSR1));
		EXPECT(sig_in(m, SIGTERM));
#if !defined(__SANITIZE_THREAD__)
		/* (TSan's thread-creation interceptor leaves every signal blocked
		 * in new threads, so this holds in the plain and ASan builds only) */
		EXPECT(!sig_in(m, SIGSEGV) && !sig_in(m, SIGBUS));
#endif
		open_sigs[0] = 0;
		for (int sig = 1; sig <= SIGRTMAX; sig++)
			if (sig != SIGKILL && sig != SIGSTOP && !fault_signal(sig) && (sig < 32 || sig >= SIGRTMIN) &&
			    !sig_in(m, sig))
				APPEND(open_sigs, " %d", sig);
		if (open_sigs[0])
			T_REPORT("task %d (started by zp_arena_create) has these signals unblocked:%s (SigBlk %016llx)",
				 (int)after[i], open_sigs, (unsigned long long)m);
	}
	EXPECT(nnew >= 1);

	/* Block SIGUSR1 in the only application thread and send it to the process. */
	sa.sa_handler = on_usr1;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, &old_sa);
	usr1_count = 0;
	usr1_tid = 0;
	pthread_sigmask(SIG_BLOCK, &usr1, NULL);
	kill(getpid(), SIGUSR1);
	sleep_ms(100);
	if (usr1_count)
		T_REPORT("the SIGUSR1 handler ran %d time(s) while every application thread blocks it, on task %d%s",
			 (int)usr1_count, (int)usr1_tid,
			 usr1_tid == main_tid ? " (main)" : " (not main: zpage's thread)");

	/* Unblocked in main: the pending signal is handled there. */
	pthread_sigmask(SIG_UNBLOCK, &usr1, NULL);
	t0 = mono_ms();
	while (!usr1_count && mono_ms() - t0 < 1000)
		sleep_ms(1); /* a sanitizer may defer the handler to its next interceptor */
	EXPECT_EQ(usr1_count, 1);
	EXPECT_EQ(usr1_tid, main_tid);

	sigaction(SIGUSR1, &old_sa, NULL);
	pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
	zp_arena_destroy(a);
}

/* ---- 4. concurrent_creation_self_test ---- */

struct cc_res {
	int created[3];
	int zeroes[3];
};

struct cc_arg {
	pthread_barrier_t *bar;
	struct cc_res *r;
	int i;
};

static void *cc_thread(void *p)
{
	struct cc_arg *ca = p;
	struct zp_config cfg = {.size = 2 * MiB, .max_order = 9};
	struct zp_arena *a;

	pthread_barrier_wait(ca->bar);
	a = zp_arena_create(&cfg);
	ca->r->created[ca->i] = a != NULL;
	if (a) {
		ca->r->zeroes[ca->i] = t_stats(a).report_zeroes;
		zp_arena_destroy(a);
	}
	return NULL;
}

static void cc_child(void *p)
{
	struct cc_res *r = p;
	pthread_barrier_t bar;
	pthread_t t[2];
	struct cc_arg args[2];
	struct zp_arena *a;

	pthread_barrier_init(&bar, NULL, 2);
	for (int i = 0; i < 2; i++) {
		args[i] = (struct cc_arg){&bar, r, i};
		if (pthread_create(&t[i], NULL, cc_thread, &args[i]))
			_exit(3);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&bar);
	/* and a third, afterwards, from one thread */
	a = zp_arena_create(&(struct zp_config){.size = 2 * MiB, .max_order = 9});
	r->created[2] = a != NULL;
	if (a) {
		r->zeroes[2] = t_stats(a).report_zeroes;
		zp_arena_destroy(a);
	}
}

/*
 * Must run before this process creates any arena: the self-test runs once
 * per process and a forked child inherits its verdict.  Run in a child so
 * that a ThreadSanitizer report (on stderr, and exit status 66 at exit)
 * fails this test by name.
 */
static void concurrent_creation_self_test(void)
{
	struct cc_res *r = shared_page(sizeof(*r));
	struct child c;
	char tmp[64];

	ASSERT(run_in_child(cc_child, r, true, &c));
	if (!child_ok(&c, tmp, sizeof(tmp)))
		T_REPORT("%s", tmp);
	if (c.len) {
		T_REPORT("the child wrote on stderr (a sanitizer report?):");
		show_child_err(&c, 40);
	}
	EXPECT(r->created[0] && r->created[1] && r->created[2]);
	EXPECT_EQ(r->zeroes[0], r->zeroes[1]);
	EXPECT_EQ(r->zeroes[0], r->zeroes[2]);
	free(c.err);
	munmap(r, sizeof(*r));
}

/* ---- 5. transparent huge pages ---- */

static int resident_pages(void *p, size_t len)
{
	unsigned char vec[512];
	int n = 0;

	if (len > sizeof(vec) * ZP_PAGE_SIZE || mincore(p, len, vec))
		return -1;
	for (size_t i = 0; i < len / ZP_PAGE_SIZE; i++)
		n += vec[i] & 1;
	return n;
}

static void nohugepage_commits_4k(void)
{
	struct zp_config cfg = {.size = 8 * MiB, .max_order = 9, .flags = ZP_NOHUGEPAGE};
	struct zp_arena *a = zp_arena_create(&cfg);
	volatile char *p;
	int n;

	if (!a)
		T_REPORT("zp_arena_create(ZP_NOHUGEPAGE): %s", strerror(errno));
	ASSERT(a);
	p = zp_alloc_pages(a, 0, 9, ZP_USER_ADDR_NONE);
	ASSERT(p);
	ASSERT_EQ(resident_pages((void *)p, 2 * MiB), 0);
	p[0] = 1;
	n = resident_pages((void *)p, 2 * MiB);
	EXPECT(n >= 1 && n <= 16);
	if (n > 16)
		T_DIAG("    one byte written made %d pages of the 2 MiB block resident", n);
	zp_free_pages(a, (void *)p, 9);
	zp_arena_destroy(a);
}

/* The first line of a sysfs file, or "" */
static void read_line(const char *path, char *buf, size_t n)
{
	FILE *f = fopen(path, "r");

	buf[0] = 0;
	if (f) {
		if (!fgets(buf, (int)n, f))
			buf[0] = 0;
		fclose(f);
	}
	buf[strcspn(buf, "\n")] = 0;
}

/* AnonHugePages (kB) of the mapping holding @p, or -1. */
static long anon_huge_kb(const void *p)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	bool in = false;
	long kb = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;

		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
			continue;
		}
		if (in && !strncmp(line, "AnonHugePages:", 14)) {
			kb = strtol(line + 14, NULL, 10);
			break;
		}
	}
	fclose(f);
	return kb;
}

static void default_hugepage_commits_2m(void)
{
	struct zp_config cfg = {.size = 8 * MiB, .max_order = 9};
	char mode[128], defrag[128];
	struct zp_arena *a;
	volatile char *p;
	int n;
	long huge;

	read_line("/sys/kernel/mm/transparent_hugepage/enabled", mode, sizeof(mode));
	read_line("/sys/kernel/mm/transparent_hugepage/defrag", defrag, sizeof(defrag));
	if (!mode[0])
		SKIP("no /sys/kernel/mm/transparent_hugepage/enabled: this kernel has no transparent huge pages");
	if (strstr(mode, "[never]"))
		SKIP("transparent huge pages are disabled on this system (enabled: %s)", mode);
	a = zp_arena_create(&cfg);
	ASSERT(a);
	p = zp_alloc_pages(a, 0, 9, ZP_USER_ADDR_NONE);
	ASSERT(p);
	p[0] = 1;
	n = resident_pages((void *)p, 2 * MiB);
	huge = anon_huge_kb((const void *)p);
	zp_free_pages(a, (void *)p, 9);
	zp_arena_destroy(a);
	if (n != 512 && huge == 0)
		SKIP("THP enabled (%s, defrag %s) but the kernel backed the block with 4 KiB pages "
		     "(%d of 512 resident, AnonHugePages 0 kB): no huge page available",
		     mode, defrag, n);
	EXPECT_EQ(n, 512);
	EXPECT(huge >= 2048);
}

/* ---- 6. thread_start_failure_leaves_nothing ---- */

static long vm_size_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmSize:", 7))
			kb = strtol(line + 7, NULL, 10);
	fclose(f);
	return kb;
}

static int nr_mappings(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	int n = 0, ch;

	if (!f)
		return -1;
	while ((ch = fgetc(f)) != EOF)
		n += ch == '\n';
	fclose(f);
	return n;
}

static void thread_start_failure_leaves_nothing(void)
{
	/* an odd size, so that a leaked reservation is easy to recognise */
	struct zp_config cfg = {.size = 37 * MiB, .max_order = 9, .flags = ZP_REPORT};
	struct zp_config pz = {.size = 37 * MiB, .max_order = 9, .flags = ZP_PREZERO};
	struct zp_arena *a;
	long vm0, vm1;
	int maps0, maps1;

	zp_test_fail_thread_start(1, EAGAIN);
	errno = 0;
	a = zp_arena_create(&cfg);
	EXPECT(a == NULL);
	EXPECT_EQ(errno, EAGAIN);
	if (a)
		zp_arena_destroy(a);
	/* the hook failed one start only: the next creation works */
	a = zp_arena_create(&cfg);
	ASSERT(a);
	zp_arena_destroy(a);

	/* now, with the allocators warmed up, fail ten times: no mapping stays */
	vm0 = vm_size_kb();
	maps0 = nr_mappings();
	for (int i = 0; i < 10; i++) {
		zp_test_fail_thread_start(1, i % 2 ? EAGAIN : EPERM);
		errno = 0;
		a = zp_arena_create(i % 2 ? &cfg : &pz);
		EXPECT(a == NULL);
		EXPECT_EQ(errno, i % 2 ? EAGAIN : EPERM);
		if (a)
			zp_arena_destroy(a);
	}
	vm1 = vm_size_kb();
	maps1 = nr_mappings();
	EXPECT(vm0 > 0 && maps0 > 0);
	EXPECT_EQ(vm1, vm0);
	EXPECT_EQ(maps1, maps0);

	/* and after them, creation works and the thread runs */
	a = zp_arena_create(&cfg);
	ASSERT(a);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

/*
 * zp_arena_create() out of address space: under an RLIMIT_AS swept in 256
 * KiB steps upward from 8 MiB short of what the process maps now plus the
 * arena, each creation either succeeds or fails with ENOMEM (the range's
 * reservation, or the metadata's, refused) and leaves the process's
 * mappings as they were.  In a child, whose limit dies with it; not under
 * the sanitizers, whose own mappings the limit would refuse.
 */
static void create_out_of_address_space_leaves_nothing(void)
{
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
	SKIP("RLIMIT_AS would refuse the sanitizer's own mappings");
#else
	int st = 0;
	pid_t pid = fork();

	if (pid == 0) {
		/* 1 GiB of max_order 9: its metadata (3 MiB and more) outgrows the
		 * 2 MiB alignment slack the reservation trims, so some limits let
		 * the range through and refuse the metadata */
		struct zp_config cfg = {.size = 1024 * MiB, .max_order = 9};
		struct zp_arena *a = zp_arena_create(&cfg); /* warm up: the allocator's own first mappings */
		int failed = 0, code = 0;

		alarm(20);
		if (!a)
			_exit(2);
		zp_arena_destroy(a);
		for (long k = 0; k < 512 && !code; k++) {
			long vm0 = vm_size_kb();
			int maps0 = nr_mappings();
			/* from 8 MiB short of the range upward */
			struct rlimit rl = {(rlim_t)(vm0 + 1024 * 1024 - 8 * 1024 + 256 * k) << 10, RLIM_INFINITY};

			if (setrlimit(RLIMIT_AS, &rl))
				_exit(3);
			errno = 0;
			a = zp_arena_create(&cfg);
			rl.rlim_cur = RLIM_INFINITY;
			setrlimit(RLIMIT_AS, &rl);
			if (a) {
				code = failed ? 0 : 4; /* at once: the limit never bit */
				if (zp_arena_check(a))
					code = 5;
				zp_arena_destroy(a);
				break;
			}
			if (errno != ENOMEM)
				code = 6;
			else if (vm_size_kb() != vm0 || nr_mappings() != maps0)
				code = 7;
			failed++;
		}
		if (!code && !a)
			code = 9; /* never created, even 120 MiB over */
		_exit(code ? code : failed ? 0 : 8);
	}
	ASSERT(pid > 0);
	st = t_wait_child(pid);
	if (st > 0)
		T_DIAG("child exit %d: %s", st,
		       st == 4	 ? "created at the first, tightest limit"
		       : st == 5 ? "zp_arena_check failed"
		       : st == 6 ? "a refused creation set errno other than ENOMEM"
		       : st == 7 ? "a refused creation left a mapping behind"
		       : st == 9 ? "never created, even 120 MiB over the process's size and the range"
				 : "setting up failed");
	EXPECT_EQ(st, 0);
#endif
}

/* ---- mlockall_future_commits_nothing ---- */

/* Would the kernel refuse to lock @bytes for this process: no
 * CAP_IPC_LOCK (bit 14 of CapEff) and RLIMIT_MEMLOCK below @bytes? */
static bool memlock_capped(size_t bytes)
{
	FILE *f = fopen("/proc/self/status", "r");
	unsigned long long cap = 0;
	char line[256];
	struct rlimit rl;

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %llx", &cap) == 1)
			break;
	if (f)
		fclose(f);
	if (cap & (1ull << 14))
		return false;
	return !getrlimit(RLIMIT_MEMLOCK, &rl) && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < bytes;
}

/* Under mlockall(MCL_CURRENT | MCL_FUTURE), as a VMM or a database may run,
 * a new read-write mapping is committed whole by mmap(): creating an arena
 * must still commit nothing, its range locked on fault instead (each page
 * locked as it is touched; VmLck counts such a range whole at once), nor
 * more than a small stack for its background thread.
 * In a child (the locks are its own). */
static void mlockall_future_commits_nothing(void)
{
	pid_t pid;
	int st;

	fflush(NULL);
	pid = fork();
	ASSERT(pid >= 0);
	if (!pid) {
		struct zp_config c = {.size = 256 * MiB, .max_order = 9};
		long lck = t_status_kib("VmLck"), rss;
		struct zp_arena *a;
		char *p;

		if (mlockall(MCL_CURRENT | MCL_FUTURE))
			_exit(10);
		if (t_status_kib("VmLck") <= lck)
			_exit(11);
		rss = t_status_kib("VmRSS");
		lck = t_status_kib("VmLck");
		a = zp_arena_create(&c);
		if (!a && errno == ENOMEM && memlock_capped(512 * MiB))
			_exit(12); /* a locked reservation counts whole against RLIMIT_MEMLOCK */
		if (!a)
			_exit(2);
		if (t_status_kib("VmRSS") - rss > 32 * 1024)
			_exit(3); /* the 256 MiB reservation (or its metadata) committed */
		if (t_status_kib("VmLck") - lck < 256 * 1024) {
			/* not locked (on fault): VmLck counts a locked range whole;
			 * the fallback where mlock2() is refused, or a failure */
			void *q = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

			_exit(q != MAP_FAILED && mlock2(q, 4096, MLOCK_ONFAULT) ? 13 : 5);
		}
		p = zp_alloc_pages(a, ZP_GFP_ZERO, 9, ZP_USER_ADDR_NONE);
		if (!p || !t_all_zero(p, 2 * MiB))
			_exit(4);
		memset(p, 1, 2 * MiB);
		if (zp_free_pages(a, p, 9) || zp_arena_check(a))
			_exit(6);
		zp_arena_destroy(a);
		/* with a background thread: its stack is committed whole too,
		 * 8 MiB by default; the library asks for a small one */
		c.flags = ZP_REPORT | ZP_PREZERO;
		rss = t_status_kib("VmRSS");
		a = zp_arena_create(&c);
		if (!a)
			_exit(2);
		if (t_status_kib("VmRSS") - rss > 2 * 1024)
			_exit(7);
		{
			/* the size itself: in a binary whose earlier threads left
			 * 8 MiB stacks in glibc's cache, already locked, a reused
			 * one adds nothing to VmRSS */
			pthread_attr_t at;
			size_t sz = 0;

			if (!a->daemon_running || pthread_getattr_np(a->daemon, &at))
				_exit(8);
			pthread_attr_getstacksize(&at, &sz);
			pthread_attr_destroy(&at);
			if (sz > 2 * MiB)
				_exit(7);
		}
		zp_arena_destroy(a);
		_exit(0);
	}
	ASSERT_EQ(waitpid(pid, &st, 0), pid);
	ASSERT(WIFEXITED(st));
	if (WEXITSTATUS(st) == 10)
		SKIP("mlockall(MCL_CURRENT | MCL_FUTURE) failed: RLIMIT_MEMLOCK?");
	if (WEXITSTATUS(st) == 11)
		SKIP("mlockall() returned 0 but VmLck did not grow (ASan and TSan make it a no-op)");
	if (WEXITSTATUS(st) == 12)
		SKIP("the kernel refused to reserve 256 MiB locked (RLIMIT_MEMLOCK, no CAP_IPC_LOCK)");
	if (WEXITSTATUS(st) == 13)
		SKIP("mlock2(MLOCK_ONFAULT) is refused here: the arena is left unlocked (nothing committed)");
	if (WEXITSTATUS(st))
		T_DIAG("%s", WEXITSTATUS(st) == 2   ? "zp_arena_create failed"
			     : WEXITSTATUS(st) == 3 ? "creating a 256 MiB arena committed more than 32 MiB"
			     : WEXITSTATUS(st) == 4 ? "a zeroing allocation failed or did not read zero"
			     : WEXITSTATUS(st) == 5 ? "the arena's range is not locked (on fault)"
			     : WEXITSTATUS(st) == 7 ? "an arena's background thread has a stack of more than 2 MiB"
			     : WEXITSTATUS(st) == 8 ? "no background thread to look at"
						    : "a free or the check failed");
	EXPECT_EQ(WEXITSTATUS(st), 0);
}

/* ---- dlclose_with_a_live_thread ---- */

/* libzpage.so is opened, a thread allocates and frees (so it has a cache,
 * whose pthread key destructor lives in the library), the arena is
 * destroyed and the library closed, then the thread exits: its key
 * destructor must still be there (the library is linked -z nodelete).
 * In a child: the failure is a crash. */
static _Atomic int dl_go;
static void *dl_thread(void *arg)
{
	void **fn = arg;
	void *(*alloc)(void *, unsigned, unsigned, uintptr_t) = (void *(*)(void *, unsigned, unsigned, uintptr_t))fn[1];
	int (*fr)(void *, void *, unsigned) = (int (*)(void *, void *, unsigned))fn[2];
	void *p = alloc(fn[0], 0, 0, ZP_USER_ADDR_NONE);

	if (!p || fr(fn[0], p, 0))
		return (void *)1;
	dl_go = 1;
	while (dl_go != 2)
		usleep(1000);
	return NULL;
}

static void dlclose_with_a_live_thread(void)
{
	char exe[4096], path[4200];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	pid_t pid;
	int st;

	if (n <= 0)
		SKIP("no /proc/self/exe");
	exe[n] = 0;
	snprintf(path, sizeof(path), "%s/../libzpage.so", dirname(exe)); /* build/tests/.. */
	if (access(path, R_OK))
		SKIP("%s is not built", path);
	fflush(NULL);
	pid = fork();
	ASSERT(pid >= 0);
	if (!pid) {
		void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL), *fn[3];
		struct zp_arena *(*create)(const struct zp_config *);
		void (*destroy)(struct zp_arena *);
		struct zp_config c = {.size = 4 * MiB, .max_order = 4};
		pthread_t t;
		void *ret;

		if (!h)
			_exit(3);
		create = (struct zp_arena * (*)(const struct zp_config *)) dlsym(h, "zp_arena_create");
		destroy = (void (*)(struct zp_arena *))dlsym(h, "zp_arena_destroy");
		fn[1] = dlsym(h, "zp_alloc_pages");
		fn[2] = dlsym(h, "zp_free_pages");
		if (!create || !destroy || !fn[1] || !fn[2] || !(fn[0] = create(&c)))
			_exit(4);
		if (pthread_create(&t, NULL, dl_thread, fn))
			_exit(5);
		while (!dl_go)
			usleep(1000);
		destroy(fn[0]);
		if (dlclose(h))
			_exit(6);
		dl_go = 2; /* the thread exits now: its cache's destructor runs */
		pthread_join(t, &ret);
		_exit(ret ? 7 : 0);
	}
	ASSERT_EQ(waitpid(pid, &st, 0), pid);
	if (WIFSIGNALED(st))
		T_DIAG("the child died of signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
	EXPECT(WIFEXITED(st));
	EXPECT_EQ(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 0);
}

int main(int argc, char **argv)
{
	t_init(argc, argv);
	for (int v = 0; v < NR_VARS; v++)
		unsetenv(vars[v].name);
	RUN(concurrent_creation_self_test); /* first: no arena created in this process yet */
	RUN(environment_matrix);
	RUN(background_thread_blocks_signals);
	RUN(nohugepage_commits_4k);
	RUN(default_hugepage_commits_2m);
	RUN(thread_start_failure_leaves_nothing);
	RUN(create_out_of_address_space_leaves_nothing);
	RUN(dlclose_with_a_live_thread);
	RUN(mlockall_future_commits_nothing);
	return t_done("test_os");
}
