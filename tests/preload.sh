#!/bin/sh
# The drop-in on other people's code (TAP): unmodified programs under
# build/zpage-run, each against the same program without it.
#   preload_prog   threads, fork, exec, realloc of large buffers (ours)
#   --stats        the arena's statistics at exit
#   failed moves   realloc's page move failing, injected (tests' build)
#   no cache       every thread cache's mapping refused (tests' build):
#                  preload_prog's checks, free() keeping errno
#   sort           a 200 MB file, output identical to sort's without zpage
#   git log        this repository's history, identical
#   node           Buffer.alloc(32 MiB) reads zero, 50 times (if node is here)
#   numpy          numpy's test_multiarray.py under /usr/bin/python3 with
#                  pytest: the same passed/skipped/xfailed counts as without
#                  (Debian's python3-numpy, python3-pytest, python3-hypothesis,
#                  which scripts/deps.sh installs; a skip says so if missing)
# Every command is time-bounded (timeout).
B=${1:-build}
run="$B/zpage-run"
n=0 fails=0
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
ok() { n=$((n + 1)); echo "ok $n - $1"; }
bad() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $1"; }
skip() { n=$((n + 1)); echo "ok $n - $1 # SKIP $2"; }
diag() { sed 's/^/# /'; }

echo "TAP version 13"
if [ ! -x "$run" ] || [ ! -r "$B/libzpage-preload.so" ] || [ ! -x "$B/tests/preload_prog" ]; then
	bad "build: $run, $B/libzpage-preload.so and $B/tests/preload_prog"
	echo "1..$n"
	exit 1
fi

# our program: threads, fork, exec, realloc; the double free is reported once
if timeout 120 "$run" --stats "$B/tests/preload_prog" >"$out/prog.txt" 2>"$out/prog.err" &&
	grep -q "^preload_prog: ok" "$out/prog.txt"; then
	ok "preload_prog: threads, fork, exec and realloc of large buffers"
else
	bad "preload_prog"; diag <"$out/prog.err"
fi
if [ "$(grep -c "not a live allocation (double or interior free)" "$out/prog.err")" -eq 1 ]; then
	ok "a double free of a large block is reported once and ignored"
else
	bad "double free report"; diag <"$out/prog.err"
fi
# --stats: the arena served the large requests (cleared or skipped pages)
if grep -q "^zpage-run: arena of [0-9]* MiB: .*cleared [1-9][0-9]*, clears skipped [1-9]" "$out/prog.err" &&
	grep -q "^zpage arena " "$out/prog.err"; then
	ok "--stats prints the arena's counters and dump at exit"
else
	bad "--stats"; head -n 3 "$out/prog.err" | diag
fi
if "$run" >/dev/null 2>"$out/usage.txt"; [ $? -eq 2 ] && grep -q "usage: zpage-run" "$out/usage.txt"; then
	ok "zpage-run without a command: usage, exit 2"
else
	bad "zpage-run usage"
fi
# fallbacks: a tiny arena (exhausted at once) and no arena at all (an address
# space limit too small for it) both leave the program running, contents kept
if PRELOAD_PROG_NO_DOUBLE_FREE=1 ZPAGE_PRELOAD_ARENA=16M timeout 120 "$run" "$B/tests/preload_prog" >"$out/small.txt" 2>&1 &&
	grep -q "^preload_prog: ok" "$out/small.txt"; then
	ok "a 16 MiB arena: what does not fit goes to the next allocator"
else
	bad "a 16 MiB arena"; tail -n 3 "$out/small.txt" | diag
fi
if (ulimit -v 1500000 && PRELOAD_PROG_NO_DOUBLE_FREE=1 ZPAGE_PRELOAD_ARENA=4G timeout 120 "$run" "$B/tests/preload_prog") \
	>"$out/noarena.txt" 2>&1 &&
	grep -q "^preload_prog: ok" "$out/noarena.txt" && grep -q "^zpage-run: no arena" "$out/noarena.txt"; then
	ok "no arena (RLIMIT_AS): one message, everything from the next allocator"
else
	bad "no arena"; tail -n 3 "$out/noarena.txt" | diag
fi
# a bad setting: one message (env.c's), the default kept, the program runs
if PRELOAD_PROG_NO_DOUBLE_FREE=1 ZPAGE_PRELOAD_MIN=lots timeout 120 "$run" "$B/tests/preload_prog" >"$out/bad.txt" 2>&1 &&
	grep -q "^preload_prog: ok" "$out/bad.txt" &&
	[ "$(grep -c "zpage: ignoring ZPAGE_PRELOAD_MIN=lots: expected a decimal number" "$out/bad.txt")" -eq 1 ]; then
	ok "ZPAGE_PRELOAD_MIN=lots: one message, the default kept"
else
	bad "a bad ZPAGE_PRELOAD_MIN"; tail -n 3 "$out/bad.txt" | diag
fi
# ZPAGE_PRELOAD_MIN applies from the first request: 64 KiB requests use the arena
if ZPAGE_PRELOAD_MIN=64K timeout 60 "$run" --stats /bin/sh -c 'exit 0' >/dev/null 2>&1 &&
	PRELOAD_PROG_NO_DOUBLE_FREE=1 ZPAGE_PRELOAD_MIN=64K timeout 60 "$run" --stats "$B/tests/preload_prog" 2>"$out/min.err" >/dev/null &&
	grep -q "^zpage-run: arena of" "$out/min.err"; then
	ok "ZPAGE_PRELOAD_MIN=64K"
else
	bad "ZPAGE_PRELOAD_MIN"; head -n 3 "$out/min.err" | diag
fi
# ZPAGE_PREZERO_BYTES: unset, empty or invalid keeps the drop-in's 32 MiB
# pre-zero reserve (not the library's default of none); a valid value, 0
# included, is what the arena gets
reserve() {
	if [ "$1" = unset ]; then set -- env -u ZPAGE_PREZERO_BYTES; else set -- env "ZPAGE_PREZERO_BYTES=$1"; fi
	"$@" PRELOAD_PROG_NO_DOUBLE_FREE=1 timeout 120 "$run" --stats "$B/tests/preload_prog" 2>&1 >/dev/null |
		grep -o "pre-zero reserve [0-9]* KiB"
}
r_unset=$(reserve unset) r_empty=$(reserve "") r_bad=$(reserve lots) r_zero=$(reserve 0) r_8m=$(reserve 8M)
if [ "$r_unset" = "pre-zero reserve 32768 KiB" ] && [ "$r_empty" = "$r_unset" ] && [ "$r_bad" = "$r_unset" ] &&
	[ "$r_zero" = "pre-zero reserve 0 KiB" ] && [ "$r_8m" = "pre-zero reserve 8192 KiB" ]; then
	ok "ZPAGE_PREZERO_BYTES: unset, empty and invalid keep 32 MiB; 0 and 8M are used"
else
	bad "ZPAGE_PREZERO_BYTES: unset '$r_unset', empty '$r_empty', lots '$r_bad', 0 '$r_zero', 8M '$r_8m'"
fi
# ZPAGE_PRELOAD_ARENA's largest accepted value (2^32 - 2 pages) makes an
# arena; one page more is refused by env.c with its message, not by
# zp_arena_create() (which would leave no arena at all: EINVAL).  Where the
# OS may refuse 16 TiB of address space (strict overcommit, an address-space
# limit), a "no arena" with another error is a skip; elsewhere a failure.
PRELOAD_PROG_NO_DOUBLE_FREE=1 ZPAGE_PRELOAD_ARENA=17592186036224 timeout 120 "$run" --stats "$B/tests/preload_prog" \
	>/dev/null 2>"$out/max.err"
max_rc=$?
if grep -q "^zpage-run: no arena (" "$out/max.err" && ! grep -q "^zpage-run: no arena (Invalid argument)" "$out/max.err" &&
	{ [ "$(cat /proc/sys/vm/overcommit_memory 2>/dev/null)" = 2 ] || [ "$(ulimit -v)" != unlimited ]; }; then
	skip "ZPAGE_PRELOAD_ARENA at its maximum" "this system refuses a 16 TiB reservation: $(grep -o "no arena ([^)]*)" "$out/max.err")"
elif [ "$max_rc" -eq 0 ] && grep -q "^zpage-run: arena of 16777215 MiB" "$out/max.err" &&
	PRELOAD_PROG_NO_DOUBLE_FREE=1 ZPAGE_PRELOAD_ARENA=17592186040320 timeout 120 "$run" --stats "$B/tests/preload_prog" \
		>/dev/null 2>"$out/over.err" &&
	grep -q "^zpage: ignoring ZPAGE_PRELOAD_ARENA=17592186040320" "$out/over.err" && grep -q "^zpage-run: arena of" "$out/over.err"; then
	ok "ZPAGE_PRELOAD_ARENA: 16 TiB - 8 KiB makes an arena, 4 KiB more is ignored with a message"
else
	bad "ZPAGE_PRELOAD_ARENA at its maximum"; cat "$out/max.err" "$out/over.err" 2>/dev/null | grep -v "^ " | head -n 4 | diag
fi

# A page move in realloc that fails, injected by the tests' build of the
# drop-in (ZPAGE_TEST_FAIL_MOVES; preload_prog grows a 5 MiB block to 40
# MiB, which moves its pages): 1, the target unmapped and mapped again, as
# an older kernel leaves it: the block is copied into it; 2, another
# mapping where the target began: the target stays allocated (lost), the
# copy goes to the next allocator, one message, and no move is tried
# again.  Each run's contents are checked by preload_prog.
faults="$B/tests/libzpage-preload-faults.so"
moves() { grep -o "realloc page moves [0-9]*, refused [0-9]*, lost [0-9]*" "$1"; }
for f in 0 1 2; do
	timeout 120 env ZPAGE_TEST_FAIL_MOVES=$f ZPAGE_PRELOAD_STATS=1 PRELOAD_PROG_NO_DOUBLE_FREE=1 \
		LD_PRELOAD="$faults" "$B/tests/preload_prog" >"$out/fail$f.txt" 2>"$out/fail$f.err"
	echo $? >"$out/fail$f.rc"
done
said() { grep -c "^zpage-run: realloc: a page move (mremap) failed" "$out/fail$1.err"; }
if [ ! -r "$faults" ]; then
	bad "build: $faults"
elif grep -q "realloc page moves 0, refused 1, lost 0 (this kernel's moves are not safe" "$out/fail0.err"; then
	skip "a failed page move in realloc" "this kernel's moves are not safe (no mremap MREMAP_DONTUNMAP, or it unmaps a refused move's target): realloc copies"
elif [ "$(cat "$out/fail0.rc" "$out/fail1.rc" "$out/fail2.rc" | tr -d '\n')" = 000 ] &&
	grep -q "^preload_prog: ok" "$out/fail0.txt" && grep -q "^preload_prog: ok" "$out/fail1.txt" &&
	grep -q "^preload_prog: ok" "$out/fail2.txt" &&
	[ "$(moves "$out/fail0.err")" = "realloc page moves 1, refused 0, lost 0" ] &&
	[ "$(moves "$out/fail1.err")" = "realloc page moves 0, refused 1, lost 0" ] &&
	[ "$(moves "$out/fail2.err")" = "realloc page moves 0, refused 0, lost 1" ] &&
	[ "$(said 0)$(said 1)$(said 2)" = 001 ]; then
	ok "a failed page move in realloc: refused, the block is copied; lost, the copy goes to the next allocator, once"
else
	bad "a failed page move in realloc"
	for f in 0 1 2; do
		echo "ZPAGE_TEST_FAIL_MOVES=$f: exit $(cat "$out/fail$f.rc"), $(moves "$out/fail$f.err"), $(said $f) message(s)" | diag
		grep -v "^ \|^zpage arena\|^free blocks\|^merges\|^held by\|^never used\|^pages:" "$out/fail$f.err" | head -n 4 | diag
	done
fi

# Thread caches that cannot be mapped (ZPAGE_TEST_FAIL_MAPS=1, the tests'
# build of the drop-in refusing every cache's mmap): preload_prog's checks
# hold on the buddy lists alone, its small blocks from zpage too
# (ZPAGE_PRELOAD_MIN=4096, below the arena's own struct, which the
# drop-in's arena creation then allocates from the next allocator), and
# free() leaves errno alone though the library met a refused mapping on
# its way.  timeout runs outside the drop-in, so a hang in it is bounded.
if [ ! -r "$faults" ]; then
	skip "no thread cache can be mapped" "no tests' build of the drop-in (reported above)"
else
	timeout 120 env ZPAGE_TEST_FAIL_MAPS=1 ZPAGE_PRELOAD_MIN=4096 ZPAGE_PRELOAD_STATS=1 \
		LD_PRELOAD="$faults" "$B/tests/preload_prog" >"$out/nomap.txt" 2>"$out/nomap.err"
	rc=$?
	if [ $rc -eq 0 ] && grep -q "^preload_prog: ok" "$out/nomap.txt" &&
		grep -q "^zpage-run: test: [1-9][0-9]* thread cache mappings refused" "$out/nomap.err"; then
		ok "no thread cache can be mapped: preload_prog's checks hold, free() keeps errno"
	else
		bad "no thread cache can be mapped"
		echo "preload_prog exit $rc" | diag
		grep -v "^ \|^zpage arena\|^free blocks\|^merges\|^held by\|^never used\|^pages:" "$out/nomap.err" |
			head -n 6 | diag
	fi
fi

# sort: 200 MB of lines
awk 'BEGIN { srand(7); for (i = 0; i < 20000000; i++) print int(rand() * 1e9) }' >"$out/lines"
if timeout 300 sort "$out/lines" >"$out/sorted.plain" &&
	timeout 300 "$run" --stats sort "$out/lines" >"$out/sorted.zpage" 2>"$out/sort.err" &&
	cmp -s "$out/sorted.plain" "$out/sorted.zpage" &&
	grep -q "^zpage-run: arena of [0-9]* MiB: " "$out/sort.err"; then
	ok "sort of a $(($(wc -c <"$out/lines") >> 20)) MiB file: the same output (it made a large request: the arena exists)"
else
	bad "sort under zpage-run"; head -n 3 "$out/sort.err" | diag
fi
rm -f "$out/lines" "$out/sorted.plain" "$out/sorted.zpage"

# git log on this repository
if command -v git >/dev/null 2>&1 && git rev-parse --git-dir >/dev/null 2>&1; then
	if timeout 120 git log -p --stat >"$out/log.plain" 2>&1 && timeout 120 "$run" git log -p --stat >"$out/log.zpage" 2>&1 &&
		cmp -s "$out/log.plain" "$out/log.zpage"; then
		ok "git log -p --stat of this repository: the same output ($(($(wc -c <"$out/log.plain") >> 20)) MiB)"
	else
		bad "git log under zpage-run"
	fi
else
	skip "git log" "not in a git checkout, or no git"
fi

# node: Buffer.alloc of 32 MiB reads zero
if command -v node >/dev/null 2>&1; then
	js='let s = 0; for (let i = 0; i < 50; i++) { const b = Buffer.alloc(32 << 20); s += b[0] + b[b.length - 1] + b[12345]; b.fill(7); } console.log("sum " + s)'
	if [ "$(timeout 120 "$run" node -e "$js" 2>&1)" = "sum 0" ]; then
		ok "node: Buffer.alloc(32 MiB) reads zero, 50 times"
	else
		bad "node under zpage-run"
	fi
else
	skip "node" "node is not installed"
fi

# numpy's own tests, with and without zpage
py=/usr/bin/python3
t=/usr/lib/python3/dist-packages/numpy/core/tests/test_multiarray.py
if [ -x "$py" ] && "$py" -c 'import numpy, pytest, hypothesis' 2>/dev/null && [ -r "$t" ]; then
	counts() { grep -o '[0-9]* \(passed\|failed\|skipped\|xfailed\|xpassed\|errors\?\)' "$1" | tr '\n' ' '; }
	# numpy skips its memory-hungry tests when MemAvailable is short, which
	# another process can make it in one run and not the other: both see
	# the figure of now (NPY_AVAILABLE_MEM, unless the caller set it), so
	# both make the same choices
	mem=$(awk '/^MemAvailable:/ { printf "%.0f", $2 * 1024 }' /proc/meminfo 2>/dev/null)
	if [ -z "${NPY_AVAILABLE_MEM+set}" ] && [ -n "$mem" ]; then export NPY_AVAILABLE_MEM="$mem"; fi
	timeout 600 "$py" -m pytest -q -p no:cacheprovider "$t" >"$out/np.plain" 2>&1
	timeout 600 "$run" "$py" -m pytest -q -p no:cacheprovider "$t" >"$out/np.zpage" 2>&1
	a=$(tail -n 1 "$out/np.plain" | counts /dev/stdin) b=$(tail -n 1 "$out/np.zpage" | counts /dev/stdin)
	if [ -n "$a" ] && [ "$a" = "$b" ]; then
		ok "numpy test_multiarray.py: the same result under zpage-run ($b)"
	else
		bad "numpy test_multiarray.py: without '$a', with zpage-run '$b'"; tail -n 3 "$out/np.zpage" | diag
	fi
else
	skip "numpy test_multiarray.py" "needs /usr/bin/python3 with numpy, pytest and hypothesis (python3-numpy python3-pytest python3-hypothesis; scripts/deps.sh installs them)"
fi

echo "1..$n"
[ "$fails" -eq 0 ]
