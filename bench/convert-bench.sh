#!/usr/bin/env bash
# The convert benchmark: `lakemesh-agent convert` on the hospital-stays CSV (../shared/bench/gen_csv.py),
# partitioned by year and month of admission_date, zstd 3, one thread, timed in the same call of
# ../shared/bench/peers.sh as DuckDB and polars (same timer, same machine noise: compare the ratios).
#
# usage: bench/convert-bench.sh [--memory-scaling] [more peers.py options, e.g. --runs 5 --keep]
#
#   default           ours + duckdb + polars on one SIZE_MB input; prints peers.py's CSV lines, then a
#                     table: MB/s (wall), MB/s per cpu-s, peak RSS, output size, files, and our
#                     ratios against each peer.
#   --memory-scaling  ours only, on each of SCALING_SIZES: peak RSS must not grow with the input.
#
# environment (defaults):
#   SIZE_MB=1000                            input size in MB (10^6 bytes)
#   SCALING_SIZES="1000 4000"               inputs of --memory-scaling
#   BENCH_DIR=$HOME/.cache/lakemesh/bench   generated CSVs (reused), the peers' venv, outputs, results/
#   CARGO_TARGET_DIR=$HOME/.cache/lakemesh-target
#   LAKEMESH_SHARED=<repo>/../shared        the team folder holding bench/peers.sh and gen_csv.py
#   RUNS=3 (1 with --memory-scaling)        counted runs per configuration, after one warm-up run
#   THREADS=1                               peers.py --threads list ("all,1" also works: our
#                                           --threads then gets 0 for "all")
#   LAKEMESH_BIN=path                       time this lakemesh-agent binary instead of building one
#   SKIP_OURS=1                             peers only: no build, no preflight, no --extra
#   SKIP_CHECK=1                            skip the preflight's equivalence check against DuckDB
#
# Before timing anything, a preflight converts a 20,000-row prefix of the same data with our binary
# and stops the benchmark (exit 1) if convert fails, the layout is not hospital_stays/year=/month=,
# a row is missing, a partition folder disagrees with admission_date, a type differs from the
# contract, or (unless SKIP_CHECK=1) the content differs from DuckDB's (../shared/bench/check_output.py).
# A failed timed run of ours also makes the script exit 1, after the table.
set -euo pipefail

mode=compare
if [[ ${1:-} == --memory-scaling ]]; then
  mode=scaling
  shift
fi
case ${1:-} in -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
shared=${LAKEMESH_SHARED:-$repo/../shared}
peers=$shared/bench
size_mb=${SIZE_MB:-1000}
scaling_sizes=${SCALING_SIZES:-1000 4000}
export BENCH_DIR=${BENCH_DIR:-$HOME/.cache/lakemesh/bench}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/lakemesh-target}
threads=${THREADS:-1}
skip_ours=${SKIP_OURS:-0}
contract=$repo/bench/stays.toml
bin=${LAKEMESH_BIN:-$CARGO_TARGET_DIR/release/lakemesh-agent}
if [[ $mode == scaling ]]; then runs=${RUNS:-1}; else runs=${RUNS:-3}; fi

say() { echo "convert-bench: $*" >&2; }
die() { say "$*"; exit 1; }

[[ -f $peers/peers.sh && -f $peers/gen_csv.py ]] ||
  die "no peers.sh/gen_csv.py in $peers (set LAKEMESH_SHARED to the team folder)"
[[ $mode == compare || $skip_ours != 1 ]] || die "--memory-scaling measures ours: drop SKIP_OURS"
mkdir -p "$BENCH_DIR/results"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
# peers.py pastes paths into `sh -c` and str.format(): keep them plain
for p in "$BENCH_DIR" "$bin" "$contract"; do
  [[ ! $p =~ [[:space:]{}\'\"\\] ]] || die "path $p has spaces, quotes or braces; peers.py cannot pass it through"
done

# ---------------------------------------------------------------------------------------------
# inputs, venv, binary

csv_for() { echo "$BENCH_DIR/stays_${1}m.csv"; }

ensure_csv() { # SIZE_MB -> generates $BENCH_DIR/stays_<SIZE_MB>m.csv unless a complete one is there
  local mb=$1 f
  f=$(csv_for "$mb")
  local limit=$((mb * 1000000))
  if [[ -f $f ]]; then
    local have
    have=$(stat -c %s "$f")
    # gen_csv.py stops at the last whole row not exceeding the limit: a few hundred bytes short
    if ((have <= limit && have > limit - 10000)); then return 0; fi
    say "$f has $have bytes, not ~$limit: regenerating"
  fi
  say "generating $f (about 80 s per GB)"
  python3 "$peers/gen_csv.py" --size-mb "$mb" -o "$f.tmp"
  mv "$f.tmp" "$f"
}

say "peers' venv: $BENCH_DIR/venv"
venv=$(LAKEMESH_VENV=$BENCH_DIR/venv "$repo/scripts/pyenv" "$repo/bench/requirements-peers.txt")
py=$venv/bin/python

if [[ -n ${LAKEMESH_BIN:-} ]]; then
  [[ $skip_ours == 1 || -x $bin ]] || die "LAKEMESH_BIN=$bin is not an executable"
elif [[ $skip_ours != 1 ]]; then
  say "building lakemesh-agent (release) into $CARGO_TARGET_DIR"
  cargo build --release -p lakemesh-agent --manifest-path "$repo/Cargo.toml" >&2 ||
    die "cargo build --release -p lakemesh-agent failed"
  [[ -x $bin ]] || die "no binary at $bin after the build"
fi

# ---------------------------------------------------------------------------------------------
# preflight: a small conversion must be right before any figure is worth printing

preflight() {
  local dir=$BENCH_DIR/preflight rows=20000
  local small=$dir/stays_${rows}rows.csv
  rm -rf "$dir/ours" "$dir/duckdb"
  mkdir -p "$dir"
  if [[ ! -f $small ]]; then
    python3 "$peers/gen_csv.py" --rows "$rows" -q -o "$small.tmp"
    mv "$small.tmp" "$small"
  fi
  say "preflight: $bin convert on $rows rows"
  if ! "$bin" convert "$small" --contract "$contract" --out "$dir/ours" --threads 1 >"$dir/ours.log" 2>&1; then
    tail -n 30 "$dir/ours.log" >&2
    die "FAILED: \`lakemesh-agent convert\` exited non-zero on the $rows-row sample (log: $dir/ours.log); nothing timed"
  fi
  "$py" "$repo/scripts/parquet_dump.py" --rows "$dir/ours/hospital_stays" >"$dir/ours.json" ||
    die "FAILED: scripts/parquet_dump.py could not read $dir/ours/hospital_stays"
  "$py" - "$dir/ours.json" "$rows" <<'EOF' || die "FAILED: the preflight output is wrong (see above); nothing timed"
import json, sys
d = json.load(open(sys.argv[1]))
want_rows = int(sys.argv[2])
errs = []
if d["rows"] != want_rows or len(d["records"]) != want_rows:
    errs.append(f"{d['rows']} rows in the footers, {len(d['records'])} read; the sample has {want_rows}")
if d["partition_keys"] != ["year", "month"]:
    errs.append(f"partition keys {d['partition_keys']}, want ['year', 'month']")
if d["other_files"]:
    errs.append(f"files that are not .parquet left in the output: {d['other_files'][:5]}")
strings = {"string", "large_string", "string_view", "dictionary<values=string, indices=int32, ordered=0>"}
want = {"stay_id": {"int64"}, "length_of_stay": {"int32"}, "total_cost": {"decimal128(12, 2)"},
        **{c: {"date32[day]"} for c in ("birth_date", "admission_date", "discharge_date")}}
names = [f["name"] for f in d["schema"]]
expect = ["stay_id", "patient_id", "sex", "birth_date", "admission_date", "discharge_date", "facility_id",
          "region_code", "department_code", "city", "diagnosis_icd10", "procedure_code", "length_of_stay",
          "total_cost", "insurer_id", "notes"]
if names != expect:
    errs.append(f"columns {names}, want {expect}")
for f in d["schema"]:
    ok = want.get(f["name"], strings)
    if f["type"] not in ok:
        errs.append(f"column {f['name']}: type {f['type']}, want {' or '.join(sorted(ok))}")
bad = [r for r in d["records"]
       if r.get("admission_date") is None
       or (r["year"], r["month"]) != (r["admission_date"][:4], r["admission_date"][5:7])]
if bad:
    errs.append(f"{len(bad)} rows in the wrong year=/month= folder, e.g. {bad[0]}")
print(f"convert-bench: preflight: {d['files']} files, {d['partitions']} partitions, {d['rows']} rows, "
      f"{d['row_groups']} row groups", file=sys.stderr)
for e in errs:
    print(f"convert-bench: preflight: {e}", file=sys.stderr)
sys.exit(1 if errs else 0)
EOF
  [[ ${SKIP_CHECK:-0} == 1 ]] && return 0
  say "preflight: same content as DuckDB? (check_output.py)"
  "$py" "$peers/peer_convert.py" duckdb part "$small" "$dir/duckdb" --threads 1 >"$dir/duckdb.log" 2>&1 ||
    die "duckdb failed on the preflight sample (log: $dir/duckdb.log)"
  local a b
  a=$("$py" "$peers/check_output.py" "$dir/ours/hospital_stays" 2>&1) || die "check_output.py failed on ours: $a"
  b=$("$py" "$peers/check_output.py" "$dir/duckdb" 2>&1) || die "check_output.py failed on duckdb: $b"
  # compare rows, sums, nulls and the content fingerprint; files, bytes, row groups and schema spelling may differ
  local ka kb
  ka=$(sed -n '1s/.*\( rows=[^ ]* cost=[^ ]* los=[^ ]* fp=[^ ]*\).*/\1/p; /nulls=/p' <<<"$a")
  kb=$(sed -n '1s/.*\( rows=[^ ]* cost=[^ ]* los=[^ ]* fp=[^ ]*\).*/\1/p; /nulls=/p' <<<"$b")
  if [[ $ka != "$kb" ]]; then
    printf '%s\n%s\n' "$a" "$b" >&2
    die "FAILED: our output differs from DuckDB's on the preflight sample (SKIP_CHECK=1 to time it anyway)"
  fi
  say "preflight: content identical to DuckDB's:$(head -1 <<<"$ka")"
}

# ---------------------------------------------------------------------------------------------
# timing

shq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }
extra="lakemesh:part=$(shq "$bin") convert {in} --contract $(shq "$contract") --out {out} --threads {threads}"
stamp=$(date -u +%Y%m%dT%H%M%SZ)

run_peers() { # CSV OUTDIR RESULT peers.py-options...: peers.py's CSV lines to stdout and RESULT (one header)
  local in=$1 out=$2 result=$3 skip=0
  shift 3
  [[ -s $result ]] && skip=1
  "$peers/peers.sh" "$in" "$out" --modes part --threads "$threads" --runs "$runs" --python "$py" "$@" |
    awk -v skip="$skip" 'NR == 1 && skip { next } { print; fflush() }' | tee -a "$result"
}

ours_ok() { # RESULT: succeeds when there are lakemesh lines and every one has ok = 1
  python3 - "$1" <<'EOF'
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["tool"] == "lakemesh"]
sys.exit(0 if rows and all(r["ok"] == "1" for r in rows) else 1)
EOF
}

fail_ours() { # OUTDIR
  local log
  for log in "$1"/logs/lakemesh_*.log; do
    [[ -f $log ]] && { say "--- tail of $log"; tail -n 20 "$log" >&2; }
  done
  die "FAILED: \`lakemesh-agent convert\` failed or timed out in the timed runs (logs: $1/logs)"
}

if [[ $mode == compare ]]; then
  ensure_csv "$size_mb"
  in=$(csv_for "$size_mb")
  [[ $skip_ours == 1 ]] || preflight
  out=$BENCH_DIR/out-convert
  result=$BENCH_DIR/results/convert-${size_mb}m-$stamp.csv
  args=(--tools 'duckdb,polars')
  [[ $skip_ours == 1 ]] || args+=(--extra "$extra")
  say "timing on $in ($runs runs + 1 warm-up each); results -> $result"
  : >"$result"
  run_peers "$in" "$out" "$result" "${args[@]}" "$@" || die "peers.sh failed (see above)"
  echo
  python3 - "$result" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
f = lambda r, k: float(r[k]) if r.get(k) else None
def fmt(v, p=1):
    return "" if v is None else f"{v:,.{p}f}"
print("| tool | thr | wall s | MB/s (wall) | cpu s | MB/s per cpu-s | peak RSS MiB | output MB | ratio in/out | files | row groups | ok | load1 |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
for r in rows:
    ob, ib = f(r, "output_bytes"), f(r, "input_bytes")
    print(f"| {r['tool']} | {r['threads']} | {fmt(f(r, 'wall_s'), 2)} | {fmt(f(r, 'mb_s'))} | {fmt(f(r, 'cpu_s'), 2)} "
          f"| {fmt(f(r, 'mb_s_cpu'))} | {fmt(f(r, 'peak_mb'), 0)} | {fmt(ob / 1e6 if ob else None)} "
          f"| {fmt(ib / ob if ob else None, 2)} | {r['files']} | {r['row_groups']} | {'yes' if r['ok'] == '1' else 'FAILED'} | {r['load1']} |")
ours = [r for r in rows if r["tool"] == "lakemesh" and r["ok"] == "1"]
for o in ours:
    for p in rows:
        if p["tool"] == "lakemesh" or p["threads"] != o["threads"] or p["ok"] != "1":
            continue
        def x(k):
            a, b = f(o, k), f(p, k)
            return f"{a / b:.2f}x" if a and b else "?"
        print(f"lakemesh / {p['tool']} (thr {o['threads']}): MB/s (wall) {x('mb_s')}, MB/s per cpu-s {x('mb_s_cpu')}, "
              f"peak RSS {x('peak_mb')}, output bytes {x('output_bytes')}")
EOF
  say "raw lines: $result; per-run figures and tool output: $out/logs/"
  if [[ $skip_ours != 1 ]] && ! ours_ok "$result"; then fail_ours "$out"; fi
  exit 0
fi

# --memory-scaling: ours alone on growing inputs
[[ $skip_ours == 1 ]] || preflight
result=$BENCH_DIR/results/convert-scaling-$stamp.csv
: >"$result"
for mb in $scaling_sizes; do
  ensure_csv "$mb"
  out=$BENCH_DIR/out-scaling-${mb}m
  say "timing ours on $(csv_for "$mb") ($runs runs + 1 warm-up)"
  run_peers "$(csv_for "$mb")" "$out" "$result" --tools '' --timeout "${TIMEOUT:-3600}" --extra "$extra" "$@" ||
    die "peers.sh failed (see above)"
  ours_ok "$result" || fail_ours "$out"
done
echo
python3 - "$result" <<'EOF'
import csv, sys
rows = sorted((r for r in csv.DictReader(open(sys.argv[1])) if r["tool"] == "lakemesh"),
              key=lambda r: int(r["input_bytes"]))
print("| input MB | thr | wall s | MB/s (wall) | cpu s | MB/s per cpu-s | peak RSS MiB | output MB | files | row groups |")
print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    print(f"| {int(r['input_bytes']) / 1e6:,.0f} | {r['threads']} | {float(r['wall_s']):.2f} | {r['mb_s']} | {float(r['cpu_s']):.2f} "
          f"| {r['mb_s_cpu']} | {float(r['peak_mb']):.0f} | {int(r['output_bytes']) / 1e6:,.1f} | {r['files']} | {r['row_groups']} |")
if len(rows) >= 2:
    a, b = rows[0], rows[-1]
    grow = float(b["peak_mb"]) / float(a["peak_mb"])
    size = int(b["input_bytes"]) / int(a["input_bytes"])
    verdict = "flat" if grow <= 1.2 else "GROWS with the input"
    print(f"peak RSS x{grow:.2f} for x{size:.1f} input: {verdict}")
EOF
say "raw lines: $result"
