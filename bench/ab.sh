#!/bin/sh
# SPDX-License-Identifier: MIT
#
# bench/ab.sh OLD-BENCH NEW-BENCH RUNS [zpage-bench options and scenarios]
#
# Compare two builds of zpage-bench (say, main's and a branch's) on a
# machine whose speed drifts: each build runs RUNS times, one run per
# invocation, in alternation (old new, new old, old new, ...: the ABBA order,
# which cancels a drift that grows steadily through the session when RUNS
# is even), then NEW-BENCH compares the two lists of JSON files, every file
# a run (zpage-bench compare OLD.json... -- NEW.json...).  From 5 runs a
# side the test is over the run medians; a change of a single row among the
# m rows of a table's column needs p < 0.05/m, which 6 runs a side cannot
# reach for m = 20 (pairs) and 8 runs can (0.001): use 8 or more.
#
# One side can run with settings of its own: $AB_OLD_ENV and $AB_NEW_ENV
# hold NAME=VALUE words (split at blanks: a value cannot hold one, nor be
# empty; quotes are characters of it) set in that side's environment
# only, so one build can be compared with itself under two settings
# (AB_NEW_ENV='TCMALLOC_RELEASE_RATE=0'); the environment both sides
# should share is simply the caller's.
#
# The runs' JSON and text output go to $AB_DIR, which must be empty or new
# (default: a new directory under ${TMPDIR:-/tmp}, printed).  Exit:
# compare's status; 2 when an argument is wrong or a run fails (its
# output's last lines on stderr).
set -u
set -f # no pathname expansion of the settings' words (the final compare turns it back on)

usage() {
	echo "usage: bench/ab.sh OLD-BENCH NEW-BENCH RUNS [zpage-bench options and scenarios]" >&2
	exit 2
}
[ $# -ge 3 ] || usage
old=$1 new=$2 runs=$3
shift 3
# a name without a slash would be looked up in PATH when run, not here
case $old in */*) ;; *) old=./$old ;; esac
case $new in */*) ;; *) new=./$new ;; esac
for b in "$old" "$new"; do
	[ -f "$b" ] && [ -x "$b" ] || { echo "bench/ab.sh: $b: not an executable zpage-bench" >&2; exit 2; }
done
case $runs in
'' | *[!0-9]* | 0*) echo "bench/ab.sh: RUNS must be a number from 1 to 9999, not '$runs'" >&2; exit 2 ;;
esac
[ "$runs" -le 9999 ] || { echo "bench/ab.sh: RUNS must be a number from 1 to 9999, not '$runs'" >&2; exit 2; }
for a in "$@"; do
	# zpage-bench takes unambiguous abbreviations of its long options
	case $a in --j* | --cs* | --re | --re=* | --rep* | --p*)
		echo "bench/ab.sh: $a: ab.sh runs one run per invocation and writes its JSON itself;" \
			"give zpage-bench's other options" >&2
		exit 2 ;;
	esac
done
# each side's settings, checked, as one line of words (printf, not echo:
# dash's echo would read backslashes in them)
settings() {
	out=
	for w in $2; do
		case $w in
		[A-Za-z_]*=?*) name=${w%%=*} ;; # an empty value is refused: a peer may read it as 0
		*) name=- ;;
		esac
		case $name in
		*[!A-Za-z0-9_]*)
			printf "bench/ab.sh: %s: '%s' is not a NAME=VALUE setting (VALUE not empty)\n" "$1" "$w" | tr -d '\n\r' >&2
			echo >&2
			exit 2 ;;
		esac
		out=${out:+$out }$w
	done
	printf '%s' "$out"
}
old_env=$(settings AB_OLD_ENV "${AB_OLD_ENV:-}") || exit 2
new_env=$(settings AB_NEW_ENV "${AB_NEW_ENV:-}") || exit 2
dir=${AB_DIR:-}
if [ -z "$dir" ]; then
	dir=$(mktemp -d "${TMPDIR:-/tmp}/zpage-ab.XXXXXX") || exit 2
elif [ -e "$dir" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
	echo "bench/ab.sh: AB_DIR $dir is not empty: its files would be pooled with this session's" >&2
	exit 2
fi
mkdir -p "$dir" || exit 2
echo "bench/ab.sh: $runs runs each of $old (old) and $new (new), alternating; output in $dir" >&2
[ -z "$old_env$new_env" ] || printf "bench/ab.sh: old side's settings: %s; new side's: %s\n" "${old_env:-none}" "${new_env:-none}" >&2

i=1
while [ "$i" -le "$runs" ]; do
	if [ $((i % 2)) -eq 1 ]; then order="old new"; else order="new old"; fi
	for side in $order; do
		if [ "$side" = old ]; then bin=$old side_env=$old_env; else bin=$new side_env=$new_env; fi
		f=$dir/$side-$(printf '%04d' "$i")
		echo "bench/ab.sh: run $i of $runs: $side" >&2
		# shellcheck disable=SC2086 # the settings are words, split on purpose
		if ! env $side_env "$bin" --json "$f.json" "$@" >"$f.txt" 2>&1; then
			echo "bench/ab.sh: $bin failed in run $i; the end of $f.txt:" >&2
			tail -n 5 "$f.txt" >&2
			exit 2
		fi
	done
	i=$((i + 1))
done
# the file names sort in run order (RUNS <= 9999)
set +f
exec "$new" compare "$dir"/old-*.json -- "$dir"/new-*.json
