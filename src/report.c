/* SPDX-License-Identifier: MIT */
/*
 * report.c - returning free memory to the OS and background pre-zeroing.
 *
 * Not implemented yet (issue "Returning free memory to the OS, and
 * background pre-zeroing"): both passes return -ENOSYS, and
 * zp_arena_create() refuses ZP_REPORT and ZP_PREZERO with ENOSYS.
 */
#include <errno.h>

#include "internal.h"

long zp_arena_report(struct zp_arena *a)
{
	return a ? -ENOSYS : -EINVAL;
}

long zp_arena_prezero(struct zp_arena *a, size_t max_bytes)
{
	(void)max_bytes;
	return a ? -ENOSYS : -EINVAL;
}
