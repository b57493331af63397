/* SPDX-License-Identifier: MIT */
/* The README's example, built by `make check` against the installed library
 * (through pkg-config) and run, so the install and the example stay true. */
#include <err.h>
#include <stdint.h>
#include <stdio.h>
#include <zpage.h>

int main(void)
{
	uintptr_t fault_addr = 0x7f0000123000; /* where the caller will touch first */
	struct zp_arena *a = zp_arena_create(NULL);
	if (!a)
		err(1, "zp_arena_create");

	char *blk = zp_alloc_pages(a, ZP_GFP_ZERO, 9, fault_addr);
	if (!blk)
		err(1, "zp_alloc_pages");
	char *buf = zp_alloc_pages(a, 0, 0, ZP_USER_ADDR_NONE);
	if (!buf || zp_free_pages(a, buf, 0) || zp_free_pages(a, blk, 9))
		errx(1, "alloc/free failed");

	struct zp_stats st;
	zp_arena_stats(a, &st);
	printf("basic: %zu pages, %zu free, %llu cleared, %llu clears skipped\n", st.nr_pages, st.nr_free,
	       (unsigned long long)st.pages_cleared, (unsigned long long)st.pages_clear_skipped);
	int ok = st.nr_free == st.nr_pages && st.pages_cleared == 0 && st.pages_clear_skipped == 512;
	zp_arena_destroy(a);
	return ok ? 0 : 1;
}
