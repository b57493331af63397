/* SPDX-License-Identifier: MIT */
/*
 * zp_arena_dump(): its tables and totals agree with zp_arena_stats() and
 * with what the test did to the arena.
 */
#include "test.h"

struct parsed {
	size_t buddy[NR_ORDERS][NR_ZSTATES], cached[TC_MAX_ORDER + 1][NR_ZSTATES];
	size_t free, zeroed, reported, dirty, held, allocated, never;
	unsigned long long cleared, skipped, rep, refaulted, prezeroed;
	int tables;
};

/* Read a table printed by dump_table(): a header row, then one row per state. */
static int parse_table(char **line, size_t (*t)[NR_ZSTATES], unsigned max)
{
	static const char *names[NR_ZSTATES] = {"zeroed", "dirty", "reported"};

	line++; /* "  order  0 1 ..." */
	for (int s = 0; s < NR_ZSTATES; s++, line++) {
		char *p = *line, *end;

		while (*p == ' ')
			p++;
		if (strncmp(p, names[s], strlen(names[s])))
			return -1;
		p += strlen(names[s]);
		for (unsigned o = 0; o <= max; o++) {
			t[o][s] = strtoull(p, &end, 10);
			if (end == p)
				return -1;
			p = end;
		}
	}
	return 0;
}

static int parse(char *text, struct parsed *d)
{
	char *lines[64];
	int n = 0;

	for (char *save = NULL, *l = strtok_r(text, "\n", &save); l && n < 64; l = strtok_r(NULL, "\n", &save))
		lines[n++] = l;
	memset(d, 0, sizeof(*d));
	for (int i = 0; i < n; i++) {
		if (!strncmp(lines[i], "free blocks on the buddy lists", 30) && i + 4 < n)
			d->tables += !parse_table(&lines[i + 1], d->buddy, 10);
		else if (!strncmp(lines[i], "free blocks in the thread caches", 32) && i + 4 < n)
			d->tables += !parse_table(&lines[i + 1], d->cached, TC_MAX_ORDER);
		else if (sscanf(lines[i], "never used (zeroed and reported, on no list yet): %zu pages", &d->never) == 1)
			d->tables += 1000;
		else if (sscanf(lines[i], "pages: %zu free (%zu zeroed, %zu reported, %zu dirty, %zu held by a pass), %zu",
				&d->free, &d->zeroed, &d->reported, &d->dirty, &d->held, &d->allocated) == 6)
			d->tables += 10;
		else if (sscanf(lines[i], "counters: cleared %llu, clear_skipped %llu, reported %llu, refaulted %llu, "
					  "prezeroed %llu",
				&d->cleared, &d->skipped, &d->rep, &d->refaulted, &d->prezeroed) == 5)
			d->tables += 100;
	}
	return d->tables == 1112 ? 0 : -1;
}

/* The dump, as TAP diagnostics. */
static void note_text(const char *text)
{
	for (const char *l = text; *l;) {
		const char *e = strchr(l, '\n');
		int n = e ? (int)(e - l) : (int)strlen(l);

		printf("# %.*s\n", n, l);
		l += n + (e != NULL);
	}
}

static void dump_matches_stats(void)
{
	struct zp_arena *a = t_arena(4096, 10, 0);
	struct zp_stats st;
	struct parsed d;
	char *text = NULL;
	size_t len = 0, pages = 0, allocated = 0;
	FILE *f;
	void *p[16];

	/* some of everything: cached small blocks, dirty and zeroed blocks,
	 * reported memory, blocks still allocated */
	for (int i = 0; i < 16; i++) {
		p[i] = zp_alloc_pages(a, ZP_GFP_ZERO, (unsigned)(i % 10), ZP_USER_ADDR_NONE);
		ASSERT(p[i]);
		memset(p[i], 1, ZP_PAGE_SIZE);
	}
	for (int i = 0; i < 16; i += 2)
		zp_free_pages(a, p[i], (unsigned)(i % 10));
	for (int i = 1; i < 16; i += 2)
		allocated += (size_t)1 << (i % 10);
	EXPECT(zp_arena_prezero(a, ZP_PAGE_SIZE * 8) >= 0);
	f = open_memstream(&text, &len);
	ASSERT(f);
	zp_arena_dump(a, f);
	fclose(f);
	zp_arena_stats(a, &st);
	note_text(text);
	ASSERT_EQ(parse(text, &d), 0);
	for (unsigned o = 0; o <= 10; o++)
		for (int s = 0; s < NR_ZSTATES; s++)
			pages += (d.buddy[o][s] + (o <= TC_MAX_ORDER ? d.cached[o][s] : 0)) << o;
	EXPECT_EQ(pages + d.held + d.never, st.nr_free);
	EXPECT_EQ(d.free, st.nr_free);
	EXPECT_EQ(d.zeroed, st.nr_free_zeroed);
	EXPECT_EQ(d.reported, st.nr_free_reported);
	EXPECT_EQ(d.zeroed + d.reported + d.dirty + d.held, st.nr_free);
	EXPECT_EQ(d.allocated, st.nr_pages - st.nr_free);
	EXPECT_EQ(d.allocated, allocated); /* what the test holds */
	EXPECT_EQ(d.rep, st.pages_reported);
	EXPECT_EQ(d.refaulted, st.pages_refaulted);
	EXPECT_EQ(d.cleared, st.pages_cleared);
	EXPECT_EQ(d.skipped, st.pages_clear_skipped);
	EXPECT_EQ(d.prezeroed, st.pages_prezeroed);
	EXPECT(d.cached[0][ZS_DIRTY] + d.cached[2][ZS_DIRTY] > 0); /* freed small blocks sit in a cache */
	free(text);
	for (int i = 1; i < 16; i += 2)
		zp_free_pages(a, p[i], (unsigned)(i % 10));
	zp_arena_destroy(a);
}

static void dump_null_is_harmless(void)
{
	struct zp_arena *a = t_arena(64, 4, 0);

	zp_arena_dump(NULL, stdout);
	zp_arena_dump(a, NULL);
	EXPECT_EQ(zp_arena_check(a), 0);
	zp_arena_destroy(a);
}

int main(int argc, char **argv)
{
	t_init(argc, argv);
	RUN(dump_matches_stats);
	RUN(dump_null_is_harmless);
	return t_done("test_dump");
}
