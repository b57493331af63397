/* SPDX-License-Identifier: MIT */
/*
 * env.c - the ZPAGE_* environment variables.
 *
 * Each variable has a range.  Unset or empty means the default.  A value is a decimal number (leading zeros
 * allowed, no sign, no spaces, no hex), with an optional K, M or G suffix
 * (KiB, MiB, GiB) for byte values.  Anything else, or a number outside the
 * range, is ignored with one message on stderr naming the variable and what
 * it accepts; a value that would make a valid configuration invalid is
 * clamped, with one message.  "One message": at most one per variable per
 * process, however many arenas read it.
 *
 * Invariants: env_get() never returns a value outside its variable's
 * range; nothing here allocates or takes a lock.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

static const struct env_var {
	const char *name;
	uint64_t min, max;
	bool bytes; /* K/M/G suffixes allowed */
	const char *unit;
} vars[NR_ENV] = {
	[ENV_REPORT_DELAY_MS] = {"ZPAGE_REPORT_DELAY_MS", 1, 86400000, false, "milliseconds"},
	[ENV_REPORT_ORDER] = {"ZPAGE_REPORT_ORDER", 1, ZP_MAX_ORDER_LIMIT, false, "a block order"},
	[ENV_PREZERO_BYTES] = {"ZPAGE_PREZERO_BYTES", 0, (uint64_t)1 << 46, true, "bytes, K/M/G suffix allowed"},
	[ENV_PREZERO_RATE_MB] = {"ZPAGE_PREZERO_RATE_MB", 1, 1048576, false, "MiB per second"},
	[ENV_PRELOAD_MIN] = {"ZPAGE_PRELOAD_MIN", 4096, (uint64_t)1 << 40, true, "bytes, K/M/G suffix allowed"},
	/* at most 2^32 - 2 pages: an arena of NIL (2^32 - 1) pages or more is refused */
	[ENV_PRELOAD_ARENA] = {"ZPAGE_PRELOAD_ARENA", (uint64_t)16 << 20, ((uint64_t)1 << 44) - 8192, true,
			       "bytes, K/M/G suffix allowed"},
	[ENV_PRELOAD_NT_MIN] = {"ZPAGE_PRELOAD_NT_MIN", 4096, (uint64_t)1 << 40, true, "bytes, K/M/G suffix allowed"},
};

static atomic_bool said[NR_ENV];

/* Parse a decimal number with an optional suffix.  false on anything else. */
static bool parse(const char *s, bool bytes, uint64_t *out)
{
	uint64_t x = 0;
	const char *p = s;

	for (; *p >= '0' && *p <= '9'; p++) {
		if (x > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return false;
		x = x * 10 + (uint64_t)(*p - '0');
	}
	if (p == s)
		return false;
	if (bytes && *p) {
		unsigned shift = 0;

		switch (*p++) {
		case 'k': case 'K': shift = 10; break;
		case 'm': case 'M': shift = 20; break;
		case 'g': case 'G': shift = 30; break;
		default: return false;
		}
		if (x > (UINT64_MAX >> shift))
			return false;
		x <<= shift;
	}
	if (*p)
		return false;
	*out = x;
	return true;
}

static bool first_time(enum env_id id)
{
	return !atomic_exchange(&said[id], true);
}

bool env_get(enum env_id id, uint64_t *out)
{
	const struct env_var *v = &vars[id];
	const char *s = getenv(v->name);
	uint64_t x;

	if (!s || !*s)
		return false; /* unset, or set to nothing: the default */
	if (parse(s, v->bytes, &x) && x >= v->min && x <= v->max) {
		*out = x;
		return true;
	}
	if (first_time(id))
		fprintf(stderr, "zpage: ignoring %s=%s: expected a decimal number from %llu to %llu (%s)\n", v->name,
			s, (unsigned long long)v->min, (unsigned long long)v->max, v->unit);
	return false;
}

void env_say_clamped(enum env_id id, uint64_t value, uint64_t to, const char *why)
{
	if (first_time(id))
		fprintf(stderr, "zpage: %s=%llu is above %s; using %llu\n", vars[id].name, (unsigned long long)value,
			why, (unsigned long long)to);
}
