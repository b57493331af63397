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

# A copy of JSON file $1 with the median and samples of the lines containing
# every one of the strings $3, $4... multiplied by $2.
scale_json() {
	f=$1 k=$2
	shift 2
	awk -v f="$k" -v pats="$(printf '%s\034' "$@")" 'BEGIN { n = split(pats, want, "\034") - 1 }
	{ hit = 1; for (i = 1; i <= n; i++) if (!index($0, want[i])) hit = 0 }
	hit {
		s = index($0, "\"samples\": [") + 12; head = substr($0, 1, s - 1); arr = substr($0, s)
		e = index(arr, "]"); tail = substr(arr, e); c = split(substr(arr, 1, e - 1), v, ", "); arr = ""
		for (i = 1; i <= c; i++) arr = arr (i > 1 ? ", " : "") (v[i] * f)
		match(head, /"median": [^,]*/); m = substr(head, RSTART + 10, RLENGTH - 10)
		$0 = substr(head, 1, RSTART - 1) "\"median\": " (m * f) substr(head, RSTART + RLENGTH) arr tail
	} { print }' "$f"
}

# every scenario, run by "all": each must have its table there (and the
# order the rows ran in, step by step, in order.txt)
ZPAGE_BENCH_ROW_ORDER="$out/order.txt" "$bench" --scale 0.02 all >"$out/all.txt" 2>&1
rc=$?
for sc in fault anon-w-seq anon-w-rand churn reuse clear rss prezero pairs scale seed; do
	if [ $rc -eq 0 ] && grep -q "^== $sc" "$out/all.txt"; then
		ok "scenario $sc (in all)"
	else
		bad "scenario $sc (in all, exit $rc)"; tail -n 5 "$out/all.txt" | diag
	fi
done
table() { sed -n "/^== $1/,/^  ($1 took/p" "$out/all.txt"; } # scenario $1's table
# preload runs numpy and node under each allocator: its rows where they can
# run, a note saying why where they cannot
if [ $rc -eq 0 ] && { { table preload | grep -q "^  zpage-run, numpy.zeros 32 MiB " &&
	table preload | grep -Eq "^  bare clear, numpy.zeros 32 MiB +[0-9.]+ \[" &&
	table preload | grep -Eq "^  bare clear, numpy.zeros 2 MiB +[0-9.]+ \["; } ||
	grep -q "numpy.zeros 32 MiB: skipped: " "$out/all.txt"; } &&
	{ table preload | grep -q "^  zpage-run, node Buffer.alloc 32 MiB " ||
		grep -q "node Buffer.alloc 32 MiB: skipped: node is not installed" "$out/all.txt"; }; then
	ok "scenario preload (in all): zpage-run's rows and the bare clear, or why a workload cannot run"
else
	bad "scenario preload"; grep -A 8 "^== preload" "$out/all.txt" | diag
fi
# peers: `make bench` and .ci/run install them (scripts/deps.sh); `make
# check` does not, so a peer the system does not have is a skip that says
# so.  A peer the system has must have its rows: fault's, and pairs' four
# orders.
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
reuse, order 9 (2048 KiB)|round
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
if tab seed | grep -q "RFC 179 -> 99 ms (-45%), RFC v2 191 -> 60 ms (-69%), v9 -78%; here " &&
	tab seed | grep -q "^  zp_arena_stats over all samples: skips its clear: 0 of [0-9]* pages cleared" &&
	! tab seed | grep -q WARNING; then
	ok "seed: the series' figures, the rows checked"
else
	bad "seed: the series' figures, the rows checked"; tab seed | diag
fi
[ "$(table pairs | grep -c "^  zpage, order [0-3] (")" -eq 4 ] && ok "pairs: zpage rows" || bad "pairs: zpage rows"
# reuse: every order's table, zpage's two rows with a median in each of the
# three columns, and the row its x column divides by
for o in "6 (256 KiB)" "9 (2048 KiB)" "10 (4096 KiB)"; do
	if [ "$(tab "reuse, order $o" | grep -E '^  zpage(, warmth off)?  ' | grep -c '\[.*\[.*\[')" -eq 2 ] &&
		tab "reuse, order $o" | grep -q "x = median / median of 'zpage, warmth off'"; then
		ok "reuse, order $o: zpage's rows"
	else
		bad "reuse, order $o: zpage's rows"; tab "reuse, order $o" | diag
	fi
done
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
table churn | grep -q "throughput, 1 B/page (M ops/s)" && table churn | grep -q "(--churn-touch page)" &&
	table churn | grep -q "half the allocations zero-filled" &&
	ok "churn writes every page by default" || bad "churn writes every page by default"
# no scenario named: the default suite, fault, anon-w-seq, churn and reuse
# (a table per order)
if "$bench" --scale 0.02 >"$out/default.txt" 2>&1 && grep -q "^== fault" "$out/default.txt" &&
	grep -q "^== anon-w-seq" "$out/default.txt" && grep -q "^== churn" "$out/default.txt" &&
	[ "$(grep -c '^== reuse, order ' "$out/default.txt")" -eq 3 ] &&
	[ "$(grep -c '^== ' "$out/default.txt")" -eq 6 ]; then
	ok "default suite"
else
	bad "default suite"; grep '^== ' "$out/default.txt" | sed 's/^/# /'
fi
# the allocator settings in the environment are in the header and the
# JSON, sorted ("none set" without any), but not the bench's own
# ZPAGE_BENCH_* and rtld tunable, nor an empty value; mimalloc's names in
# any case, as mimalloc reads them
if env -i PATH="$PATH" "$bench" --scale 0.02 scale >"$out/set0.txt" 2>&1 &&
	grep -q "; allocator settings: none set$" "$out/set0.txt" &&
	env -i PATH="$PATH" ZPAGE_PRELOAD_MIN=1M TCMALLOC_RELEASE_RATE=0 mimalloc_purge_delay=5 MALLOC_ARENA_MAX=2 \
		ZPAGE_BENCH_UNRELATED=1 ZPAGE_REPORT_ORDER= GLIBC_TUNABLES=glibc.malloc.arena_test=:glibc.malloc.trim_threshold=131072 \
		"$bench" --scale 0.02 --json "$out/set1.json" scale >"$out/set1.txt" 2>&1 &&
	want="MALLOC_ARENA_MAX=2 TCMALLOC_RELEASE_RATE=0 ZPAGE_PRELOAD_MIN=1M glibc.malloc.trim_threshold=131072 mimalloc_purge_delay=5" &&
	grep -qx "peers: .*; allocator settings: $want" "$out/set1.txt" &&
	grep -q "\"allocator_settings\": \"$want\"" "$out/set1.json"; then
	ok "allocator settings from the environment said, sorted, none set without them"
else
	bad "allocator settings"; grep "allocator settings" "$out/set0.txt" "$out/set1.txt" | diag
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
	[ "$(head -n 1 "$out/r.csv")" = "scenario,row,metric,unit,median,p10,p90,samples,run" ] &&
		[ "$(wc -l <"$out/r.csv")" -gt 5 ] && ok "csv" || bad "csv"
	grep -q '"throughput, 1 B/block"' "$out/r.csv" && grep -q "(--churn-touch block)" "$out/machine.txt" &&
		ok "--churn-touch block, said in the table and the csv" || bad "--churn-touch block"
	if command -v python3 >/dev/null 2>&1; then
		python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert len(d["results"]) > 4' \
			"$out/r.json" && ok "json" || bad "json"
	else
		grep -q '"results"' "$out/r.json" && ok "json" || bad "json"
	fi
	# the environment: a header above the tables, every field in the CSV and the JSON
	grep -q "^zpage-bench [0-9.]* (commit [^ ]*), " "$out/machine.txt" && grep -q "^cpu: .*; clears: " "$out/machine.txt" &&
		grep -q "^kernel .*; THP enabled .*, defrag .*; hypervisor: .*; free page reporting: " "$out/machine.txt" &&
		grep -q "^peers: glibc [0-9]" "$out/machine.txt" && ok "environment header" ||
		{ bad "environment header"; head -n 5 "$out/machine.txt" | diag; }
	# the commit stamp is the tree's as built (make rebuilds the bench when git describe changes)
	if [ -e .git ] && command -v git >/dev/null 2>&1; then
		want=$(git describe --always --dirty 2>/dev/null)
		grep -q "^zpage-bench [0-9.]* (commit $want), " "$out/machine.txt" && ok "commit stamp is the tree's ($want)" ||
			{ bad "commit stamp is not the tree's ($want)"; head -n 1 "$out/machine.txt" | diag; }
	else
		skipped "commit stamp" "not a git checkout"
	fi
	keys="zpage_version zpage_commit compiler cpu_model cpu_features clear_cached clear_cached_small clear_nt cores_online
		cores_configured memory_total_kib kernel_release thp_enabled thp_defrag hypervisor free_page_reporting
		glibc_version jemalloc_version mimalloc_version tcmalloc_version allocator_settings"
	missing=
	for k in $keys; do grep -q "^\"environment\",\"$k\",\"[^\"]" "$out/r.csv" || missing="$missing $k"; done
	[ -z "$missing" ] && ok "environment in the csv" || bad "environment in the csv, missing:$missing"
	if command -v python3 >/dev/null 2>&1; then
		# shellcheck disable=SC2086
		python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); e=d["environment"]
m=[k for k in sys.argv[2:] if not str(e.get(k, ""))]; assert not m, m
assert all(isinstance(r["samples"], list) and r["run"] == 1 for r in d["results"])' "$out/r.json" $keys &&
			ok "environment and samples in the json" || bad "environment and samples in the json"
	else
		missing=
		for k in $keys; do grep -q "^  \"$k\": [^ ]" "$out/r.json" || missing="$missing $k"; done
		[ -z "$missing" ] && ok "environment in the json" || bad "environment in the json, missing:$missing"
	fi

	# compare: a file with itself flags nothing, every ratio 1.00 ("-" where the old median is 0)
	if "$bench" compare "$out/r.json" "$out/r.json" >"$out/same.txt" 2>&1 &&
		grep -q "^0 worse, 0 better, 0 ratios higher or lower, [0-9]* ~, [0-9]* too few samples; 0 only in old, 0 only in new" "$out/same.txt" &&
		! grep -q "^  .* [0-9.]* *\(worse\|better\|higher\|lower\) (p=" "$out/same.txt" &&
		[ "$(sed -n '/^  row /,/^$/p' "$out/same.txt" | grep -v '^  row \|^$' | grep -cv ' \(1\.00\|-\)  ')" -eq 0 ] &&
		grep -q "Mann-Whitney U" "$out/same.txt" && grep -q "Benjamini-Hochberg" "$out/same.txt"; then
		ok "compare: identical inputs, nothing flagged"
	else
		bad "compare: identical inputs"; tail -n 5 "$out/same.txt" | diag
	fi
	# a synthetic 2x slowdown of one row (every sample and the median doubled) must be flagged
	# (the run is --churn-touch block, so its latency columns carry the mode)
	scale_json "$out/r.json" 2 '"row": "zpage, 1 thread", "metric": "latency, 1 B/block",' >"$out/slow.json"
	if "$bench" compare "$out/r.json" "$out/slow.json" >"$out/slow.txt" 2>&1 &&
		grep -q "^  zpage, 1 thread  *latency, 1 B/block (ns)  *[0-9.]*  *[0-9.]*  *2\.00  worse (p=0\.0" "$out/slow.txt" &&
		grep -q "^1 worse, 0 better" "$out/slow.txt"; then
		ok "compare: a 2x slowdown of one row flagged, nothing else"
	else
		bad "compare: a 2x slowdown"; grep "zpage, 1 thread\|worse," "$out/slow.txt" | diag
	fi
	# every row's latency 3% slower: significant over the samples (and after the correction for the
	# ten rows of the column), but under the 5% floor
	scale_json "$out/r.json" 1.03 '"metric": "latency, 1 B/block",' >"$out/slow3.json"
	if "$bench" compare "$out/r.json" "$out/slow3.json" >"$out/slow3.txt" 2>&1 &&
		grep -q "^  zpage, 1 thread  *latency, 1 B/block (ns)  *[0-9.]*  *[0-9.]*  *1\.03  ~ within 5% (p=0\.0[0-4]" "$out/slow3.txt" &&
		grep -q "^0 worse, 0 better" "$out/slow3.txt"; then
		ok "compare: a significant 3% change of every row is under the 5% floor: not flagged"
	else
		bad "compare: the 5% floor"; grep "zpage, 1 thread  *latency, 1 B/block (ns)\|worse," "$out/slow3.txt" | diag
	fi
	# bad input: one line on stderr, exit 2
	head -c 300 "$out/r.json" >"$out/truncated.json"
	sed 's/"scenario": "churn"/"scenario": "other"/' "$out/r.json" >"$out/other.json"
	for pair in "missing.json r.json" "truncated.json r.json" "r.json other.json"; do
		# shellcheck disable=SC2086
		set -- $pair
		"$bench" compare "$out/$1" "$out/$2" >/dev/null 2>"$out/err.txt"
		rc=$?
		if [ $rc -eq 2 ] && [ "$(wc -l <"$out/err.txt")" -eq 1 ]; then ok "compare rejects $1 $2"; else
			bad "compare rejects $1 $2 (exit $rc)"; diag <"$out/err.txt"
		fi
	done
	if command -v gnuplot >/dev/null 2>&1; then
		[ -s "$out/plots/churn.svg" ] && [ -s "$out/plots/churn_cdf.svg" ] && ok "plots" || bad "plots"
	else
		grep -q "gnuplot is not installed" "$out/machine.txt" && ok "plots say gnuplot is missing" ||
			bad "plots without gnuplot"
	fi
else
	bad "machine outputs"; tail -n 5 "$out/machine.txt" | diag
fi

# compare over run medians (8 runs a side): a 10x change of one row in every run is flagged (this
# machine's run medians of one row at --scale 0.05 have spread over 2x), tested
# over the runs, and nothing else; the same file against itself flags nothing
"$bench" pairs --scale 0.05 --repeat 8 --json "$out/p8a.json" >/dev/null 2>&1
rc=$?
if [ $rc -eq 0 ] && "$bench" compare "$out/p8a.json" "$out/p8a.json" >"$out/c8.txt" 2>&1 &&
	grep -q "^0 worse, 0 better, 0 ratios higher or lower, 100 ~, 0 too few samples" "$out/c8.txt" &&
	grep -q "n=8+8 runs" "$out/c8.txt"; then
	ok "compare: 8 runs against themselves, tested over the runs, nothing flagged"
else
	bad "compare: 8 runs against themselves (exit $rc)"; grep "worse\|better\|higher\|lower" "$out/c8.txt" | head -n 5 | diag
fi
scale_json "$out/p8a.json" 10 '"metric": "1 thread",' '"row": "zpage, order 0 (4 KiB)"' >"$out/p8x2.json"
if "$bench" compare "$out/p8a.json" "$out/p8x2.json" >"$out/c8x2.txt" 2>&1 &&
	grep -q "^  zpage, order 0 (4 KiB)  *1 thread (M pairs/s)  *[0-9.]*  *[0-9.]*  *10\.00  better (p=0\.00[0-9]* q=0\.0[0-4][0-9]* n=8+8 runs)" "$out/c8x2.txt" &&
	grep -q "^0 worse, 1 better, 0 ratios higher or lower, 99 ~" "$out/c8x2.txt"; then
	ok "compare: a 10x change of one row in every run flagged over the runs, nothing else"
else
	bad "compare: a 10x change over runs"; grep "order 0 (4 KiB)  *1 thread\|^[0-9]* worse" "$out/c8x2.txt" | diag
fi
# compare OLD... -- NEW...: the runs of a side's files pooled; the 8 runs above, one file per run,
# give the same verdicts as the two files that hold them
split_run() {
	awk -v k="$2" '/"run": [0-9]+, "samples"/ {
		if (index($0, "\"run\": " k ", ")) { sub(/,$/, ""); r[n++] = $0 }
		next
	}
	/^\]\}$/ { for (i = 0; i < n; i++) print r[i] (i < n - 1 ? "," : ""); print; next }
	{ print }' "$1"
}
for k in 1 2 3 4 5 6 7 8; do
	split_run "$out/p8a.json" $k >"$out/p8a-$k.json"
	split_run "$out/p8x2.json" $k >"$out/p8x2-$k.json"
done
if "$bench" compare "$out"/p8a-?.json -- "$out"/p8x2-?.json >"$out/c8l.txt" 2>&1 &&
	grep -q "^zpage-bench compare: old $out/p8a-1.json and 7 more, new $out/p8x2-1.json and 7 more" "$out/c8l.txt" &&
	grep -q "^  zpage, order 0 (4 KiB)  *1 thread (M pairs/s)  *[0-9.]*  *[0-9.]*  *10\.00  better (p=0\.00[0-9]* q=0\.0[0-4][0-9]* n=8+8 runs)" "$out/c8l.txt" &&
	grep -q "^0 worse, 1 better, 0 ratios higher or lower, 99 ~" "$out/c8l.txt" &&
	[ "$(grep -c '^  ' "$out/c8l.txt")" -eq "$(grep -c '^  ' "$out/c8x2.txt")" ]; then
	ok "compare OLD... -- NEW...: one file per run, the runs pooled, as from the files that hold them"
else
	bad "compare OLD... -- NEW..."; grep "order 0 (4 KiB)  *1 thread\|^[0-9]* worse\|^zpage-bench compare" "$out/c8l.txt" | diag
fi
# bench/ab.sh: alternating runs (old new, new old), one per invocation, then the compare of the
# lists; two wrappers of the bench say which side ran, so a swap of the sides would show
printf '#!/bin/sh\necho old >>"%s"\nexec "%s" "$@"\n' "$out/ab-log" "$bench" >"$out/old-bench"
printf '#!/bin/sh\necho new >>"%s"\nexec "%s" "$@"\n' "$out/ab-log" "$bench" >"$out/new-bench"
chmod +x "$out/old-bench" "$out/new-bench"
AB_DIR=$out/ab sh bench/ab.sh "$out/old-bench" "$out/new-bench" 2 pairs --scale 0.02 >"$out/ab.txt" 2>"$out/ab.err"
rc=$?
if [ $rc -eq 0 ] && [ "$(sed -n 's/^bench\/ab.sh: run \([0-9]\) of 2: \(old\|new\)$/\1\2/p' "$out/ab.err" | tr '\n' ' ')" = "1old 1new 2new 2old " ] &&
	[ "$(tr '\n' ' ' <"$out/ab-log")" = "old new new old new " ] &&
	[ -s "$out/ab/old-0002.json" ] && [ -s "$out/ab/new-0002.json" ] &&
	grep -q "^zpage-bench compare: old $out/ab/old-0001.json and 1 more, new $out/ab/new-0001.json and 1 more" "$out/ab.txt" &&
	grep -q " n=[0-9]*+[0-9]* samples)$" "$out/ab.txt" && grep -q "; 0 only in old, 0 only in new$" "$out/ab.txt"; then
	ok "bench/ab.sh: two runs a side in ABBA order, each by its own build, then compare of the lists"
else
	bad "bench/ab.sh (exit $rc)"; tail -n 5 "$out/ab.err" | diag
fi
# a side's own settings (AB_NEW_ENV): in that side's runs only, named in the headers, and the
# compare lists the setting that differs; a word that is not NAME=VALUE is refused
printf '#!/bin/sh\necho "old:${AB_SMOKE-}" >>"%s"\nexec "%s" "$@"\n' "$out/ab-env-log" "$bench" >"$out/old-bench-e"
printf '#!/bin/sh\necho "new:${AB_SMOKE-}" >>"%s"\nexec "%s" "$@"\n' "$out/ab-env-log" "$bench" >"$out/new-bench-e"
chmod +x "$out/old-bench-e" "$out/new-bench-e"
# (env -i: no setting of the caller's may reach either side)
env -i PATH="$PATH" AB_NEW_ENV='AB_SMOKE=on TCMALLOC_RELEASE_RATE=0' AB_DIR="$out/ab-env" sh bench/ab.sh \
	"$out/old-bench-e" "$out/new-bench-e" 2 pairs --scale 0.02 >"$out/ab-env.txt" 2>"$out/ab-env.err"
rc=$?
if [ $rc -eq 0 ] && [ "$(tr '\n' ' ' <"$out/ab-env-log")" = "old: new:on new:on old: new: " ] &&
	grep -q "^bench/ab.sh: old side's settings: none; new side's: AB_SMOKE=on TCMALLOC_RELEASE_RATE=0$" "$out/ab-env.err" &&
	grep -q "allocator settings: TCMALLOC_RELEASE_RATE=0$" "$out/ab-env/new-0002.txt" &&
	grep -q "allocator settings: none set$" "$out/ab-env/old-0002.txt" &&
	grep -q "^  allocator_settings: none set -> TCMALLOC_RELEASE_RATE=0$" "$out/ab-env.txt"; then
	ok "bench/ab.sh: AB_NEW_ENV sets the new side's runs only, and compare names the setting"
else
	bad "bench/ab.sh with AB_NEW_ENV (exit $rc)"; tail -n 5 "$out/ab-env.err" | diag; diag <"$out/ab-env-log"
fi
for e in 'AB_OLD_ENV=1X=2' 'AB_NEW_ENV=A-B=1' 'AB_OLD_ENV=novalue' 'AB_NEW_ENV==x' 'AB_NEW_ENV=X=' \
	'AB_NEW_ENV=X=1 -i' 'AB_OLD_ENV=X=1 bad\nword=2'; do
	env -i PATH="$PATH" "$e" AB_DIR="$out/ab-bad-env" sh bench/ab.sh "$bench" "$bench" 1 pairs --scale 0.02 \
		>/dev/null 2>"$out/ab-bad.err"
	rc=$?
	label=$(printf '%s' "$e" | sed 's/\\/(backslash)/g') # ok() echoes, and dash's echo reads backslashes
	if [ $rc -eq 2 ] && [ "$(wc -l <"$out/ab-bad.err")" -eq 1 ] && grep -q "is not a NAME=VALUE setting" "$out/ab-bad.err" &&
		[ ! -e "$out/ab-bad-env" ]; then
		ok "bench/ab.sh rejects $label"
	else
		bad "bench/ab.sh rejects $label (exit $rc)"; diag <"$out/ab-bad.err"
	fi
done
for args in "$bench" "$bench $bench 0 pairs" "$bench $bench 00 pairs" "$bench $bench x" \
	"$bench $bench 2 --json x.json pairs" "$bench $bench 2 --js=x.json pairs" "$bench $bench 2 --repeat 3 pairs" "$bench $bench 2 --re 3 pairs" \
	"$out/nonexistent $bench 2 pairs" "$out $bench 2 pairs"; do
	# shellcheck disable=SC2086
	AB_DIR=$out/ab-bad sh bench/ab.sh $args >/dev/null 2>"$out/ab-bad.err"
	rc=$?
	if [ $rc -eq 2 ] && [ "$(wc -l <"$out/ab-bad.err")" -eq 1 ]; then ok "bench/ab.sh rejects: ${args#"$bench"}"; else
		bad "bench/ab.sh rejects: $args (exit $rc)"; diag <"$out/ab-bad.err"
	fi
done
# a used AB_DIR: its runs would be pooled with the new ones
AB_DIR=$out/ab sh bench/ab.sh "$bench" "$bench" 1 pairs --scale 0.02 >/dev/null 2>"$out/ab-bad.err"
rc=$?
if [ $rc -eq 2 ] && grep -q "is not empty" "$out/ab-bad.err" && [ ! -e "$out/ab/old-0003.json" ]; then
	ok "bench/ab.sh refuses an AB_DIR that holds files"
else
	bad "bench/ab.sh and a used AB_DIR (exit $rc)"; diag <"$out/ab-bad.err"
fi
# in lists, a file given twice (one run counted twice would pass for two) or a unit that changes
# within a side is refused; OLD NEW naming one file stays the check that nothing stands out
sed 's/"unit": "M pairs\/s"/"unit": "ns"/' "$out/p8a-2.json" >"$out/p8a-2ns.json"
for args in "$out/p8a-1.json $out/p8a-1.json -- $out/p8a-2.json" "$out/p8a-1.json -- $out/p8a-2.json $out/p8a-1.json" \
	"$out/p8a-1.json -- $out/p8a-2.json -- $out/p8a-3.json" "$out/p8a-1.json $out/p8a-2ns.json -- $out/p8a-3.json"; do
	# shellcheck disable=SC2086
	"$bench" compare $args >/dev/null 2>"$out/err.txt"
	rc=$?
	if [ $rc -eq 2 ] && [ "$(wc -l <"$out/err.txt")" -eq 1 ]; then ok "compare rejects $(echo "$args" | sed "s|$out/||g")"; else
		bad "compare rejects $args (exit $rc)"; diag <"$out/err.txt"
	fi
done
for args in "one.json --" "-- one.json" "a.json b.json c.json"; do
	# shellcheck disable=SC2086
	"$bench" compare $args >/dev/null 2>"$out/err.txt"
	rc=$?
	if [ $rc -eq 2 ] && [ "$(wc -l <"$out/err.txt")" -eq 1 ]; then ok "compare rejects $args"; else
		bad "compare rejects $args (exit $rc)"; diag <"$out/err.txt"
	fi
done
# --repeat: every run's tables, then the spread of the medians; CSV and JSON carry each run
"$bench" --scale 0.02 --repeat 2 --csv "$out/r2.csv" --json "$out/r2.json" --report "$out/report" churn \
	>"$out/repeat.txt" 2>&1
rc=$?
if [ $rc -eq 0 ] &&
	grep -q "^-- run 2 of 2" "$out/repeat.txt" && [ "$(grep -c '^== churn: medians' "$out/repeat.txt")" -eq 2 ] &&
	grep -q "^== churn: spread of the medians over 2 runs: median of the run medians \[min-max\]" "$out/repeat.txt" &&
	grep -q '^"churn",.*,2$' "$out/r2.csv" && grep -q '"run": 2, "samples": \[' "$out/r2.json" &&
	grep -q '^"runs": 2,' "$out/r2.json"; then
	ok "--repeat 2"
else
	bad "--repeat 2 (exit $rc)"; tail -n 5 "$out/repeat.txt" | diag
fi
# --repeat's run-by-run ratios (the same run): zpage's row over glibc's of the same kind in each
# run, from the JSON's medians (6 digits; the table prints 4: within 0.1%), their median
# [min-max] and how many runs zpage was better in, as the table prints them
line=$(grep "^  zpage, 1 thread vs glibc, 1 thread " "$out/repeat.txt")
want=$(awk '/"scenario": "churn", "row": "(zpage|glibc), 1 thread", "metric": "throughput/ {
	m = $0; sub(/.*"median": /, "", m); sub(/,.*/, "", m); r = $0; sub(/.*"run": /, "", r); sub(/,.*/, "", r)
	if (index($0, "\"zpage")) z[r] = m; else g[r] = m }
	END { r1 = z[1] / g[1]; r2 = z[2] / g[2]; lo = r1 < r2 ? r1 : r2; hi = r1 < r2 ? r2 : r1
		printf "%.4f %.4f %.4f %d", (r1 + r2) / 2, lo, hi, (r1 > 1) + (r2 > 1) }' "$out/r2.json")
got=$(echo "$line" | sed -E 's/.* ([0-9.e+-]+) \[([0-9.e+-]+)-([0-9.]+(e[+-][0-9]+)?)\] +([0-9]+) of 2 runs .*/\1 \2 \3 \5/')
if [ $rc -eq 0 ] && grep -q "^== churn: zpage against its peers, run by run over 2 runs: throughput" "$out/repeat.txt" &&
	[ -n "$line" ] && echo "$want $got" | awk '{ for (i = 1; i <= 3; i++) { d = $i - $(i + 4); if (d < -0.001 * $i || d > 0.001 * $i) exit 1 }
		if ($4 != $8) exit 1 }'; then
	ok "--repeat 2: run-by-run ratios match the runs' medians"
else
	bad "--repeat 2: run-by-run ratios (exit $rc): want $want, table: $line" </dev/null
fi
# --repeat's peers beyond a row's kind: fault's zpage row against the counterpart the scenario
# names, seed's skipping row against its reference (zpage's own "clears again"), each once, the
# ratio turned so that above 1 is zpage's row better (times: lower is better, so the other's over
# zpage's), as the runs' medians in the JSON give it; no row against itself
"$bench" --scale 0.02 --repeat 2 --idle 0 --json "$out/fs.json" fault seed >"$out/fs.txt" 2>&1
fs_rc=$?
# pair_ok SCENARIO ZPAGE-ROW OTHER-ROW METRIC: the table's median and count against the JSON's
pair_ok() {
	[ "$(grep -c "^  $2 vs $3 " "$out/fs.txt")" -eq 1 ] || return 1
	line=$(grep "^  $2 vs $3 " "$out/fs.txt")
	want=$(awk -v sc="$1" -v z="$2" -v o="$3" -v m="$4" 'index($0, "\"scenario\": \"" sc "\", ") &&
		index($0, "\"metric\": \"" m) {
		v = $0; sub(/.*"median": /, "", v); sub(/,.*/, "", v); r = $0; sub(/.*"run": /, "", r); sub(/,.*/, "", r)
		if (index($0, "\"row\": \"" z "\",")) zm[r] = v; else if (index($0, "\"row\": \"" o "\",")) om[r] = v }
		END { r1 = om[1] / zm[1]; r2 = om[2] / zm[2]; printf "%.4f %d", (r1 + r2) / 2, (r1 > 1) + (r2 > 1) }' "$out/fs.json")
	got=$(echo "$line" | sed -E 's/.* ([0-9.e+-]+) \[[0-9.e+-]+-[0-9.e+-]+\] +([0-9]+) of [0-9]+ runs.*/\1 \2/')
	echo "$want $got" | awk '{ d = $1 - $3; if (d < -0.001 * $1 || d > 0.001 * $1 || $2 != $4) exit 1 }'
}
if [ $fs_rc -eq 0 ] && grep -q "^== fault: zpage against its peers, run by run over 2 runs: first touch" "$out/fs.txt" &&
	pair_ok fault "zpage, fresh (OS-zeroed)" "kernel, new THP mapping" "first touch" &&
	pair_ok seed "zpage, reported: skips its clear" "zpage, reported: clears again" "task-clock" &&
	! grep -q "^  zpage, reported: clears again vs zpage, reported: clears again " "$out/fs.txt"; then
	ok "--repeat 2: zpage against its counterpart (fault) and its own reference row (seed)"
else
	bad "--repeat 2: counterpart and reference pairs (exit $fs_rc)"; grep " vs " "$out/fs.txt" | diag
fi
# --report (the same run): index.md with the environment, the tables, the charts inline, a reading
md=$out/report/index.md
if [ $rc -eq 0 ] && grep -q "^## Environment" "$md" && grep -q "^| cpu_model | ." "$md" && grep -q "^## churn" "$md" &&
	grep -q "^== churn: spread of the medians over 2 runs" "$md" &&
	grep -Eq '^- latency: `zpage, 1 thread` \(.* ns\) (is .* than|is within 1% of) `glibc, 1 thread` .*; `zpage, 2 threads` \(.* ns\) (is .* than|is within 1% of) `glibc, 2 threads`' "$md"; then
	img=$(sed -n 's/^!\[churn\](\(.*\))$/\1/p' "$md")
	if command -v gnuplot >/dev/null 2>&1; then
		[ -n "$img" ] && [ -s "$out/report/$img" ] && ok "--report" || bad "--report: chart '$img'"
	else
		grep -q "No charts" "$md" && ok "--report (no gnuplot: says so)" || bad "--report without gnuplot"
	fi
else
	bad "--report"; head -n 20 "$md" 2>/dev/null | diag
fi

# --churn-touch none --churn-zero none: the allocators' own path, said in the
# column and the notes; zpage's arena clears nothing (its dump says so)
if "$bench" --scale 0.02 --threads 2 --churn-touch none --churn-zero none --dump --csv "$out/nz.csv" churn \
	>"$out/nz.txt" 2>&1; then
	grep -q '"throughput, no writes, no zeroing"' "$out/nz.csv" && grep -q "(--churn-touch none)" "$out/nz.txt" &&
		grep -q "(--churn-zero none)" "$out/nz.txt" && [ "$(grep -c '^counters: cleared 0,' "$out/nz.txt")" -eq 1 ] &&
		grep -q '^-- zp_arena_dump at the end of churn: zpage rows' "$out/nz.txt" &&
		grep -q '"latency p99, no writes, no zeroing"' "$out/nz.csv" &&
		ok "--churn-touch none --churn-zero none: columns, notes, nothing cleared" ||
		{ bad "--churn-touch none --churn-zero none"; grep '^counters' "$out/nz.txt" | diag; }
else
	bad "churn --churn-touch none --churn-zero none (exit)"; tail -n 5 "$out/nz.txt" | diag
fi
if "$bench" --scale 0.02 --threads 2 --churn-zero none --dump --csv "$out/pz.csv" churn >"$out/pz.txt" 2>&1 &&
	grep -q '"throughput, 1 B/page, no zeroing"' "$out/pz.csv" && grep -q "(--churn-touch page)" "$out/pz.txt" &&
	[ "$(grep -c '^counters: cleared 0,' "$out/pz.txt")" -eq 1 ]; then
	ok "--churn-zero none alone: every page written, nothing cleared"
else
	bad "--churn-zero none alone"; grep '^counters' "$out/pz.txt" | diag
fi

# --churn-orders: per order and kind of call, for every row at each thread
# count; a run without it has no such table
if "$bench" --scale 0.02 --threads 2 --churn-orders --csv "$out/co.csv" churn >"$out/co.txt" 2>&1; then
	missing=
	for t in "1 thread" "2 threads"; do
		for r in "zpage, order 0" "zpage, order 10" "glibc, order 0" "glibc, order 10"; do
			for m in "alloc" "zeroing alloc" "after alloc" "after zeroing alloc" "free" "after free"; do
				grep -Eq "^\"churn orders, $t\",\"$r\",\"$m\",\"ns\",[0-9.e+]+," "$out/co.csv" ||
					missing="$missing [$t / $r / $m]"
			done
		done
	done
	[ -z "$missing" ] && grep -q "mean time of a call by block order" "$out/co.txt" &&
		ok "--churn-orders: every order, kind and thread count" || bad "--churn-orders, missing:$missing"
	# the figures go where they belong: writing 1024 pages after an order-10
	# allocation takes longer than one page after an order-0 one, and
	# zeroing 4 MiB longer than not
	med() { grep -F "\"churn orders, 1 thread\",\"zpage, order $1\",\"$2\",\"ns\"," "$out/co.csv" | sed 's/.*"ns",\([^,]*\),.*/\1/'; }
	if awk -v a="$(med 10 "after alloc")" -v b="$(med 0 "after alloc")" -v z="$(med 10 "zeroing alloc")" \
		-v n="$(med 10 "alloc")" 'BEGIN { exit !(a > 10 * b && b > 0 && z > 10 * n && n > 0) }'; then
		ok "--churn-orders: the writes and the zeroing land in their columns"
	else
		bad "--churn-orders: after alloc order 10 $(med 10 "after alloc") / order 0 $(med 0 "after alloc"), zeroing alloc order 10 $(med 10 "zeroing alloc") / alloc $(med 10 "alloc")"
	fi
	[ -s "$out/pz.csv" ] && ! grep -q '"churn orders' "$out/pz.csv" &&
		ok "no churn orders table without --churn-orders" || bad "churn orders without --churn-orders (or no csv)"
else
	bad "churn --churn-orders (exit)"; tail -n 5 "$out/co.txt" | diag
fi

# --churn-floor: a floor row at each thread count, which allocates every
# time and really clears a zero-filled block; no floor row without it
if "$bench" --scale 0.02 --threads 2 --churn-floor --churn-orders --csv "$out/cf.csv" --report "$out/cfrep" churn \
	>"$out/cf.txt" 2>&1; then
	for t in "1 thread" "2 threads"; do
		grep -Eq "^\"churn\",\"floor, $t\",\"throughput, 1 B/page\",\"M ops/s\",[1-9][0-9.e+]*," "$out/cf.csv" &&
			ok "--churn-floor: a floor row at $t" || bad "--churn-floor: no floor row at $t"
	done
	fmed() { grep -F "\"churn orders, 1 thread\",\"floor, order $1\",\"$2\",\"ns\"," "$out/cf.csv" | sed 's/.*"ns",\([^,]*\),.*/\1/'; }
	if grep -q "^  floor (--churn-floor): the same loop with no allocator" "$out/cf.txt" &&
		grep -q "^  floor: [1-9][0-9]* blocks carved in the warm-up runs, [0-9]* more" "$out/cf.txt" &&
		! grep -q "floor, [12] threads\{0,1\}: .* allocations failed" "$out/cf.txt" &&
		awk -v z="$(fmed 10 "zeroing alloc")" -v n="$(fmed 10 "alloc")" 'BEGIN { exit !(z > 10 * n && n > 0) }'; then
		ok "--churn-floor: said in the notes, no failed allocation, a zero-filled block cleared"
	else
		bad "--churn-floor: note, failures or clears (zeroing alloc order 10 $(fmed 10 "zeroing alloc"), alloc $(fmed 10 "alloc"))"
		grep -i "floor" "$out/cf.txt" | diag
	fi
	# the report's reading never holds the floor up as a row to beat
	grep -q '^  floor, 1 thread ' "$out/cfrep/index.md" && grep -q '^- throughput' "$out/cfrep/index.md" &&
		! grep '^- ' "$out/cfrep/index.md" | grep -q '`floor, ' &&
		ok "--churn-floor: in the report's table, never in its reading" ||
		{ bad "--churn-floor: the report's reading names the floor (or no report)"; grep '^- ' "$out/cfrep/index.md" | diag; }
	[ -s "$out/co.csv" ] && ! grep -q '"floor, ' "$out/co.csv" &&
		ok "no floor row without --churn-floor" || bad "a floor row without --churn-floor (or no csv)"
else
	bad "churn --churn-floor (exit)"; tail -n 5 "$out/cf.txt" | diag
fi

# bad input: one line on stderr, exit code 2
for args in "--bogus" "--threads 0" "--threads x" "--scale -1" "--idle x" "--csv" "--churn-touch x" \
	"--churn-touch" "--churn-zero x" "--churn-zero" "--churn-orders=1" "--churn-floor=1" "--churn x" "nosuchscenario" "--repeat 0" "--repeat x" "compare" "compare one.json"; do
	# shellcheck disable=SC2086
	"$bench" $args >/dev/null 2>"$out/err.txt"
	rc=$?
	if [ $rc -eq 2 ] && [ "$(wc -l <"$out/err.txt")" -eq 1 ]; then ok "rejects '$args'"; else
		bad "rejects '$args' (exit $rc)"; diag <"$out/err.txt"
	fi
done
"$bench" --help >"$out/help.txt" && grep -q "anon-w-rand" "$out/help.txt" && grep -q "^  pairs " "$out/help.txt" &&
	grep -q "^  scale " "$out/help.txt" && grep -q "^  seed " "$out/help.txt" && grep -q "churn-touch" "$out/help.txt" && grep -q -- "--churn-zero M" "$out/help.txt" &&
	grep -q -- "--repeat N" "$out/help.txt" && grep -q -- "--report DIR" "$out/help.txt" &&
	grep -q "zpage-bench compare OLD.json NEW.json" "$out/help.txt" && ok "--help" || bad "--help"

echo "# bench_smoke: $pass passed, $fail failed, $skip skipped"
echo "1..$n"
[ $fail -eq 0 ]
