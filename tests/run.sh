#!/bin/sh
# Runs every test program given, prints all its output (stderr too), and
# reads the TAP it prints on stdout (as prove does; stderr is only shown): "ok N - name", "not ok N - name",
# "ok N - name # SKIP reason", the plan "1..N".  Ends with the failed and
# skipped tests of every program, then one line over all of them:
# "N passed, N failed, N skipped".
#
# A program that prints no TAP at all (an example program) counts as one
# test, passed iff it exits 0.  A program that prints TAP counts one more
# failure, unless it reported a failed test already, when it exits
# non-zero (a sanitizer's report at exit, a crash) or its plan is missing
# or does not match the tests it printed (it died half-way); a crash is
# named in the recap even after failed tests.
passed=0 failed=0 skipped=0
recap=$(mktemp) err=$(mktemp)
trap 'rm -f "$recap" "$err"' EXIT
for t in "$@"; do
	echo "== $t"
	out=$("$t" 2>"$err"); rc=$?
	printf '%s\n' "$out"
	cat "$err"
	# "passed failed skipped tests plan" (plan -1: none; tests -1: no TAP)
	counts=$(printf '%s\n' "$out" | awk '
		BEGIN { p = f = s = n = 0; plan = -1; tap = 0 }
		/^ok [0-9]+/ {
			tap = 1; n++
			if ($0 ~ /#[ \t]*[Ss][Kk][Ii][Pp]/) s++; else p++
			next
		}
		/^not ok [0-9]+/ { tap = 1; n++; f++; next }
		/^1\.\.[0-9]+/ {
			tap = 1; plan = substr($1, 4) + 0
			if (plan == 0 && $0 ~ /#[ \t]*[Ss][Kk][Ii][Pp]/) s++ # skip all
			next
		}
		/^Bail out!/ { tap = 1; f++; next }
		END { print p, f, s, (tap ? n : -1), plan }')
	read -r p f s n plan <<EOF
$counts
EOF
	printf '%s\n' "$out" | grep -E '^(not ok [0-9]+|(ok [0-9]+|1\.\.0).*#[[:space:]]*[Ss][Kk][Ii][Pp]|Bail out!)' |
		sed "s|^|$t: |" >>"$recap"
	if [ "$n" -lt 0 ]; then
		if [ "$rc" -eq 0 ]; then
			passed=$((passed + 1))
		else
			echo "$t: exit code $rc: counted as 1 failed" | tee -a "$recap"
			failed=$((failed + 1))
		fi
		continue
	fi
	passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
	if [ "$f" -ne 0 ] && [ "$rc" -gt 128 ]; then
		echo "$t: killed by signal $((rc - 128)) after a failed test" | tee -a "$recap"
	fi
	if [ "$f" -eq 0 ]; then
		if [ "$rc" -ne 0 ]; then
			why="exit code $rc"
			[ "$rc" -gt 128 ] && why="$why (signal $((rc - 128)))"
			echo "$t: $why with no failed test: counted as 1 failed" | tee -a "$recap"
			failed=$((failed + 1))
		elif [ "$plan" -ne "$n" ]; then
			if [ "$plan" -lt 0 ]; then why="no plan"; else why="plan 1..$plan"; fi
			echo "$t: $why after $n tests: counted as 1 failed" | tee -a "$recap"
			failed=$((failed + 1))
		fi
	fi
done
echo
if [ -s "$recap" ]; then
	echo "Not passed (failed, skipped):"
	cat "$recap"
	echo
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
