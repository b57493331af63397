#!/bin/sh
# Smoke test of zpage-bench: every scenario at a tiny scale, the machine
# outputs, charts when gnuplot is there, and the command-line errors.
# Prints TAP like the C suites (ok N - name, not ok N - name,
# ok N - name # SKIP reason, "# " diagnostics, the plan 1..N last).
bench=${1:-build/zpage-bench}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
n=0 pass=0 fail=0 skip=0
ok() { n=$((n + 1)) pass=$((pass + 1)); echo "ok $n - $1"; }
bad() { n=$((n + 1)) fail=$((fail + 1)); echo "not ok $n - $1"; }
skipped() { n=$((n + 1)) skip=$((skip + 1)); echo "ok $n - $1 # SKIP $2"; }
diag() { sed 's/^/# /'; } # stdin as TAP diagnostics
echo "TAP version 13"

# every scenario, run by "all": each must have its table there (and the
# order the rows ran in, step by step, in order.txt)
ZPAGE_BENCH_ROW_ORDER="$out/order.txt" "$bench" --scale 0.02 all >"$out/all.txt" 2>&1
rc=$?
for sc in fault anon-w-seq anon-w-rand churn clear rss prezero pairs scale seed; do
	if [ $rc -eq 0 ] && grep -q "^== $sc" "$out/all.txt"; then
		ok "scenario $sc (in all)"
	else
		bad "scenario $sc (in all, exit $rc)"; tail -n 5 "$out/all.txt" | diag
	fi
done
table() { sed -n "/^== $1/,/^  ($1 took/p" "$out/all.txt"; } # scenario $1's table
# peers: `make bench` installs them (scripts/deps.sh); `make check` does
# not, so a peer the system does not have is a skip that says so.  A peer
# the system has must have its rows: fault's, and pairs' four orders.
for p in glibc:libc.so.6 jemalloc:libjemalloc.so.2 mimalloc:libmimalloc.so.2 tcmalloc:libtcmalloc.so.4; do
	name=${p%%:*} lib=${p##*:}
	for sc in fault pairs; do
		if [ $sc = fault ]; then rows=$(table fault | grep -c "^  $name calloc ") want=1; else
			rows=$(table pairs | grep -c "^  $name, order [0-3] (") want=4
		fi
		if [ "$rows" -eq $want ]; then
			ok "$sc: peer rows $name"
		elif ! ldconfig -p 2>/dev/null | grep -q "$lib" && table $sc | grep -q "^  $name: not installed"; then
			skipped "$sc: peer rows $name" "$name not installed ($lib); make bench installs it"
		else
			bad "$sc: peer rows $name ($rows of $want)"
		fi
	done
done
table fault | grep -q "^  kernel, after MADV_DONTNEED" && ok "kernel row" || bad "kernel row"
# fault: the whole block written, for every row (a median [p10-p90] in
# each of its three columns)
if table fault | grep -q "  whole block written (us) " &&
	[ "$(table fault | grep -E '^  (zpage|kernel|[a-z]+ calloc)' | grep -vc '\[.*\[.*\[')" -eq 0 ]; then
	ok "fault: whole block written, every row"
else
	bad "fault: whole block written, every row"; table fault | diag
fi
# rows rotate: in order.txt ("scenario<TAB>unit<TAB>step<TAB>rows in the
# order run"), as many different rows go first as there are rows, or steps
# when fewer; and the table's note says how often each went first
tab() { sed -n "/^== $1: /,/^\$/p" "$out/all.txt"; } # one table of all.txt
while IFS='|' read -r sc unit; do
	if awk -F'\t' -v sc="$sc" -v unit="$unit" '$1 == sc && $2 == unit {
			n = split($4, a, " "); steps++
			if (!(a[1] in first)) { first[a[1]] = 1; d++ }
		} END { want = steps < n ? steps : n; exit !(steps > 1 && n > 1 && d == want) }' "$out/order.txt" &&
		tab "$sc" | grep -q "^  row order rotating by $unit: each of the "; then
		ok "rows rotate: $sc, by $unit"
	else
		bad "rows rotate: $sc, by $unit"; grep "^$sc	" "$out/order.txt" | head -n 12 | diag
	fi
done <<EOF
fault|request
anon-w-seq|round
anon-w-rand|round
churn|run
clear order 0 (4 KiB)|sample
clear order 10 (4096 KiB)|sample
prezero|round
pairs|round
scale|round
seed|sample
EOF
tab rss | grep -q "^  row order: fixed, one pass each, not interleaved: " && ok "rss says why its rows do not rotate" ||
	bad "rss says why its rows do not rotate"
# the limit: measured in the same run, one line in every table; "of the
# limit" columns where they mean something
missing=$(awk '/^== /{ if (t != "" && !l) print t; t = $0; l = 0 }
	/^  limit, measured at the start \(end\) of this scenario, GB\/s: clear .* non-temporal .* first write to fresh memory/{ l = 1 }
	END { if (t != "" && !l) print t }' "$out/all.txt")
if [ $rc -eq 0 ] && [ -z "$missing" ] && [ "$(grep -c '^== ' "$out/all.txt")" -ge 13 ]; then
	ok "the limit in every table"
else
	bad "the limit in every table"; echo "$missing" | diag
fi
for sc in anon-w-seq anon-w-rand "clear order 9 (2048 KiB)" "clear order 10 (4096 KiB)"; do
	tab "$sc" | grep -q " of the limit (x) " && ok "$sc: of the limit" || bad "$sc: of the limit"
done
# seed: its four rows, the series' figures beside ours, the rows doing what
# they are named for (zp_arena_stats), and not in the default suite
for row in "zpage, reported: skips its clear" "zpage, reported: clears again" "zpage, dirty resident: clears" \
	"kernel, fresh THP mapping"; do
	tab seed | grep -q "^  $row  " && ok "seed: row $row" || bad "seed: row $row"
done
if tab seed | grep -q "RFC 179 -> 99 ms (-45%), RFC v2 191 -> 60 ms (-68%), v9 -78%; here " &&
	tab seed | grep -q "^  zp_arena_stats over all samples: skips its clear: 0 of [0-9]* pages cleared" &&
	! tab seed | grep -q WARNING; then
	ok "seed: the series' figures, the rows checked"
else
	bad "seed: the series' figures, the rows checked"; tab seed | diag
fi
[ "$(table pairs | grep -c "^  zpage, order [0-3] (")" -eq 4 ] && ok "pairs: zpage rows" || bad "pairs: zpage rows"
# scale: every size and max_order, or for 1 TiB a note that it cannot be had
for size in "1 GiB" "64 GiB" "1 TiB"; do
	for o in 10 14 20; do
		if table scale | grep -q "^  zpage, $size, max_order $o  "; then
			ok "scale: row $size, max_order $o"
		elif [ "$size" = "1 TiB" ] && table scale | grep -q "^  zpage, $size, max_order $o: cannot be created here"; then
			skipped "scale: row $size, max_order $o" "not possible on this machine (see its note)"
		else
			bad "scale: row $size, max_order $o"
		fi
	done
done
table churn | grep -q "throughput, 1 B/page" && table churn | grep -q "(--churn-touch page)" &&
	ok "churn writes every page by default" || bad "churn writes every page by default"
# no scenario named: the default suite, fault, anon-w-seq and churn
if "$bench" --scale 0.02 >"$out/default.txt" 2>&1 && grep -q "^== fault" "$out/default.txt" &&
	grep -q "^== anon-w-seq" "$out/default.txt" && grep -q "^== churn" "$out/default.txt" &&
	[ "$(grep -c '^== ' "$out/default.txt")" -eq 3 ]; then
	ok "default suite"
else
	bad "default suite"; grep '^== ' "$out/default.txt" | sed 's/^/# /'
fi
# the fault rows after idle (short), with a dump of both fault arenas
if "$bench" --scale 0.02 --idle 0.2 --dump fault >"$out/idle.txt" 2>&1 &&
	grep -q "^  zpage, reported + 0.2s idle" "$out/idle.txt" &&
	grep -q "^-- zp_arena_dump at the end of fault: rows after idle" "$out/idle.txt"; then
	ok "fault after idle, --dump"
else
	bad "fault after idle, --dump"; sed 's/^/# /' "$out/idle.txt" | tail -n 5
fi
# --dump: a buddyinfo-style dump of each kind of arena as it ends
if "$bench" --scale 0.02 --dump rss >"$out/dump.txt" 2>&1 &&
	[ "$(grep -c '^-- zp_arena_dump at the end of' "$out/dump.txt")" -eq 2 ] &&
	grep -q '^free blocks on the buddy lists' "$out/dump.txt" && grep -q '^counters: cleared' "$out/dump.txt"; then
	ok "--dump"
else
	bad "--dump"; sed 's/^/# /' "$out/dump.txt" | tail -n 5
fi

if "$bench" --scale 0.02 --threads 2 --churn-touch block --csv "$out/r.csv" --json "$out/r.json" \
	--plot "$out/plots" churn >"$out/machine.txt" 2>&1; then
	[ "$(head -n 1 "$out/r.csv")" = "scenario,row,metric,unit,median,p10,p90,samples" ] &&
		[ "$(wc -l <"$out/r.csv")" -gt 5 ] && ok "csv" || bad "csv"
	grep -q '"throughput, 1 B/block"' "$out/r.csv" && grep -q "(--churn-touch block)" "$out/machine.txt" &&
		ok "--churn-touch block, said in the table and the csv" || bad "--churn-touch block"
	if command -v python3 >/dev/null 2>&1; then
		python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert len(d["results"]) > 4' \
			"$out/r.json" && ok "json" || bad "json"
	else
		grep -q '"results"' "$out/r.json" && ok "json" || bad "json"
	fi
	if command -v gnuplot >/dev/null 2>&1; then
		[ -s "$out/plots/churn.svg" ] && [ -s "$out/plots/churn_cdf.svg" ] && ok "plots" || bad "plots"
	else
		grep -q "gnuplot is not installed" "$out/machine.txt" && ok "plots say gnuplot is missing" ||
			bad "plots without gnuplot"
	fi
else
	bad "machine outputs"; tail -n 5 "$out/machine.txt" | diag
fi

# bad input: one line on stderr, exit code 2
for args in "--bogus" "--threads 0" "--threads x" "--scale -1" "--idle x" "--csv" "--churn-touch x" \
	"--churn-touch" "nosuchscenario"; do
	# shellcheck disable=SC2086
	"$bench" $args >/dev/null 2>"$out/err.txt"
	rc=$?
	if [ $rc -eq 2 ] && [ "$(wc -l <"$out/err.txt")" -eq 1 ]; then ok "rejects '$args'"; else
		bad "rejects '$args' (exit $rc)"; diag <"$out/err.txt"
	fi
done
"$bench" --help >"$out/help.txt" && grep -q "anon-w-rand" "$out/help.txt" && grep -q "^  pairs " "$out/help.txt" &&
	grep -q "^  scale " "$out/help.txt" && grep -q "^  seed " "$out/help.txt" && grep -q "churn-touch" "$out/help.txt" &&
	ok "--help" || bad "--help"

echo "# bench_smoke: $pass passed, $fail failed, $skip skipped"
echo "1..$n"
[ $fail -eq 0 ]
