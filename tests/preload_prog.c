/* SPDX-License-Identifier: MIT */
/*
 * A program that knows nothing of zpage, run under zpage-run by
 * tests/preload.sh: threads, fork, exec and realloc of large buffers through
 * the malloc family.  Prints "preload_prog: ok" and exits 0 when every
 * check held; otherwise says what failed and exits 1.
 *
 * Checks: calloc reads zero (large and small, fresh and reused); contents
 * survive realloc growing a block from small to large and from large to
 * larger, and shrinking; posix_memalign / aligned_alloc / memalign / valloc /
 * pvalloc honour their alignment; malloc_usable_size covers the request;
 * four threads churn large and small blocks with tags; a child forked while
 * they run allocates, frees and execs /bin/true; a double free of a large
 * block does not stop the program (the drop-in reports it once; skipped
 * with PRELOAD_PROG_NO_DOUBLE_FREE=1, for runs where the block may come from
 * another allocator, which would abort as glibc does); free() leaves errno
 * alone.
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures;

#define CHECK(c)                                                                                                       \
	do {                                                                                                           \
		if (!(c)) {                                                                                            \
			fprintf(stderr, "preload_prog: %s:%d: %s\n", __FILE__, __LINE__, #c);                          \
			__atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED);                                            \
		}                                                                                                      \
	} while (0)

static int all_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i += 64)
		if (p[i])
			return 0;
	return n == 0 || p[n - 1] == 0;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

static void *churn(void *arg)
{
	uint64_t s = (uintptr_t)arg * 7919 + 1;
	struct {
		unsigned char *p;
		size_t n;
		unsigned char tag;
	} live[16] = {{0}};

	for (int op = 0; op < 3000; op++) {
		int k = (int)(rnd(&s) % 16);
		size_t n;

		if (live[k].p) {
			CHECK(live[k].p[0] == live[k].tag && live[k].p[live[k].n - 1] == live[k].tag &&
			      live[k].p[live[k].n / 2] == live[k].tag);
			free(live[k].p);
			live[k].p = NULL;
			continue;
		}
		n = rnd(&s) & 1 ? 1 + rnd(&s) % (8 << 20) : 1 + rnd(&s) % 4096;
		live[k].tag = (unsigned char)(rnd(&s) | 1);
		if (op & 1) {
			live[k].p = calloc(1, n);
			CHECK(live[k].p && all_zero(live[k].p, n));
		} else {
			live[k].p = malloc(n);
			CHECK(live[k].p);
		}
		if (!live[k].p)
			continue;
		CHECK(malloc_usable_size(live[k].p) >= n);
		live[k].n = n;
		memset(live[k].p, live[k].tag, n);
	}
	for (int k = 0; k < 16; k++)
		free(live[k].p);
	return NULL;
}

static char errno_kept[1];

/* Free @arg and say whether errno stayed as it was (GCC 12 assumes free()
 * keeps it, hence the call through a volatile pointer). */
static void *free_keeps_errno(void *arg)
{
	void (*volatile free_p)(void *) = free;

	errno = EDOM;
	free_p(arg);
	return errno == EDOM ? errno_kept : NULL;
}

int main(void)
{
	pthread_t t[4];
	unsigned char *p, *q;
	void *a;
	pid_t pid;
	int st;

	/* calloc: large and small, then reused */
	for (int i = 0; i < 4; i++) {
		p = calloc(3, 1 << 20);
		CHECK(p && all_zero(p, 3 << 20));
		if (p)
			memset(p, 0xee, 3 << 20);
		free(p);
		q = calloc(100, 10);
		CHECK(q && all_zero(q, 1000));
		free(q);
	}
	/* free() leaves errno alone (glibc 2.33, POSIX.1-2024), whatever the
	 * size: 3 MiB comes from zpage wherever there is an arena, the smaller
	 * ones too with ZPAGE_PRELOAD_MIN=4096; each is freed by a new thread
	 * whose first call it is, which for the sizes the thread caches serve
	 * tries to map the thread's cache */
	static const size_t sizes[] = {8192, 65536, 524288, 3 << 20};

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t sz = sizes[i];
		void *kept = errno_kept;

		p = malloc(sz);
		CHECK(p);
		if (!p)
			continue;
		memset(p, 0x3c, sz);
		CHECK(pthread_create(&t[0], NULL, free_keeps_errno, p) == 0 && pthread_join(t[0], &kept) == 0 &&
		      kept == errno_kept);
	}
	/* realloc: small -> large -> larger -> smaller, contents kept */
	p = malloc(1000);
	CHECK(p);
	memset(p, 0x5a, 1000);
	p = realloc(p, 5 << 20);
	CHECK(p && p[0] == 0x5a && p[999] == 0x5a);
	memset(p, 0x6b, 5 << 20);
	p = realloc(p, 40 << 20);
	CHECK(p && p[0] == 0x6b && p[(5 << 20) - 1] == 0x6b);
	p = realloc(p, 2 << 20);
	CHECK(p && p[0] == 0x6b && p[(2 << 20) - 1] == 0x6b);
	p = reallocarray(p, 3, 1 << 20);
	CHECK(p && p[(2 << 20) - 1] == 0x6b);
	free(p);
	/* alignment */
	for (size_t al = 4096; al <= (8 << 20); al <<= 2) {
		CHECK(posix_memalign(&a, al, 3 << 20) == 0 && ((uintptr_t)a & (al - 1)) == 0);
		free(a);
		a = aligned_alloc(al, 4 << 20);
		CHECK(a && ((uintptr_t)a & (al - 1)) == 0);
		free(a);
		a = memalign(al, 1 << 20);
		CHECK(a && ((uintptr_t)a & (al - 1)) == 0);
		free(a);
	}
	a = valloc(2 << 20);
	CHECK(a && ((uintptr_t)a & 4095) == 0);
	free(a);
	a = pvalloc((2 << 20) + 1);
	CHECK(a && ((uintptr_t)a & 4095) == 0 && malloc_usable_size(a) >= (2 << 20) + 4096);
	free(a);
	/* threads, and a fork (and an exec) while they run */
	for (int i = 0; i < 4; i++)
		CHECK(pthread_create(&t[i], NULL, churn, (void *)(uintptr_t)(i + 1)) == 0);
	usleep(1000);
	pid = fork();
	if (pid == 0) {
		unsigned char *c = calloc(1, 6 << 20);

		if (!c || !all_zero(c, 6 << 20))
			_exit(3);
		free(c);
		c = malloc(12 << 20);
		if (!c)
			_exit(4);
		memset(c, 1, 12 << 20);
		free(c);
		execl("/bin/true", "true", (char *)NULL);
		_exit(5);
	}
	CHECK(pid > 0);
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	/* a double free of a large block: reported once, ignored */
	p = malloc(4 << 20);
	CHECK(p);
	if (!getenv("PRELOAD_PROG_NO_DOUBLE_FREE")) {
		void *volatile again = p; /* the compiler is not to see the double free */

		free(p);
		free(again);
	} else {
		free(p);
	}
	p = malloc(4 << 20); /* the allocator still works */
	CHECK(p);
	free(p);
	if (failures) {
		fprintf(stderr, "preload_prog: %d checks failed\n", failures);
		return 1;
	}
	printf("preload_prog: ok\n");
	return 0;
}
