#!/usr/bin/env bash
# rac end-to-end benchmark: rac compute against a bare arrow-rs read + write and against the same
# subset of rules written in Polars (lazy) and DuckDB (SQL), on one generated data set.
#
# Usage: scripts/bench.sh [N_ACTS] [--skip-peers] [--threads-scaling] [--sorted-input]
#
#   N_ACTS             acts to generate (default 10000000; 1_000_000 is accepted)
#   --skip-peers       run only the baseline and rac (no Python venv needed)
#   --threads-scaling  also run rac with --threads 1 and --threads 2
#   --sorted-input     also run rac on the same acts sorted by patient_id (rac finds the order
#                      and streams them instead of spilling); needs the peers' venv
#
# What it does, in order:
#   1. cargo build --release (the rac binary, examples/bare_read_write.rs and
#      examples/output_floor.rs);
#   2. rac generate --acts N --seed 7 --format parquet into target/bench-data/N (reused when
#      present and generated with the same parameters);
#   3. unless --skip-peers, a venv in target/bench-venv with pinned polars, duckdb and pyarrow
#      (pip, from PyPI; reused when the pins match);
#   4. each run measured for wall time and peak RSS, with GNU /usr/bin/time -v when present,
#      else scripts/measure.py (getrusage of the child); the input files are read once first
#      so that every run starts from a warm page cache:
#        bare     examples/bare_read_write: read 6 columns of acts.parquet, write them (snappy)
#        rac      rac compute ... --format parquet --log-format json (all cores)
#        floor    examples/output_floor on rac's acts.parquet: arrow-rs encoding that table
#                 alone with rac's settings, one thread, timed inside (not a run; its own line)
#        rac-1t   rac compute --threads 1, rac-2t --threads 2 (with --threads-scaling)
#        rac-sorted  rac compute on DATA-sorted/acts.parquet (with --sorted-input: the acts
#                 sorted by patient_id once, out of core, by DuckDB in the venv; reused)
#        polars   scripts/peer/polars_rac.py (rules subset, see scripts/peer/rules_subset.py)
#        duckdb   scripts/peer/duckdb_rac.py (same subset)
#   5. outside the timings: the .xx5 rounding check of rac and of both peer scripts
#      (80.15 × 70 % = 56.11), a check that the two peers agree to the cent, and (with
#      --sorted-input) that rac wrote the same tables from the sorted acts;
#   6. the table: wall s, rows/s, peak RSS MiB, CPU s and the CPU s the host took back
#      (steal) per run, the ratios and the issue's targets;
#      then where each rac configuration's last run spent its time, phase by phase, from its
#      log (scripts/rac_phases.py: the reading's and the computing's wall and CPU seconds).
#
# Results: target/bench-results/N/ — table.txt (what is printed at the end), results.tsv,
# floor.tsv, env.txt (machine, versions, commit), logs/ (each run's output and timing, this run
# only), out/ (each run's outputs, replaced on every run).
#
# Environment: BENCH_DATA, BENCH_RESULTS, BENCH_VENV (folders above), BENCH_SEED (7),
# BENCH_PATIENTS (N / 10), BENCH_RAC_ARGS (extra rac flags, e.g. --memory-limit 768M), BENCH_REPEAT (1: runs of each command; the best wall time and the
# largest peak RSS are kept), BENCH_TIMER=python (use scripts/measure.py even where GNU time
# exists), PYTHON (python3, for the venv and the helpers), CARGO_TARGET_DIR.
# Each run of N = 10 M takes a few minutes on 2 cores; disk: about 1.5 GB per 10 M acts.
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }

N=10000000
SKIP_PEERS=0
SCALING=0
SORTED=0
for arg in "$@"; do
  case "$arg" in
    --skip-peers) SKIP_PEERS=1 ;;
    --threads-scaling) SCALING=1 ;;
    --sorted-input) SORTED=1 ;;
    -h | --help) usage; exit 0 ;;
    *[!0-9_]* | '') echo "bench.sh: unknown argument '$arg'" >&2; usage >&2; exit 2 ;;
    *) N=$(( 10#${arg//_/} )) ;;
  esac
done
if (( N < 1 )); then echo "bench.sh: N_ACTS must be at least 1" >&2; exit 2; fi
if (( SORTED && SKIP_PEERS )); then echo "bench.sh: --sorted-input sorts with the peers' DuckDB: not with --skip-peers" >&2; exit 2; fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
DATA=${BENCH_DATA:-$TARGET/bench-data/$N}
RESULTS=${BENCH_RESULTS:-$TARGET/bench-results/$N}
VENV=${BENCH_VENV:-$TARGET/bench-venv}
SEED=${BENCH_SEED:-7}
PATIENTS=${BENCH_PATIENTS:-$(( N / 10 > 0 ? N / 10 : 1 ))}
PYTHON=${PYTHON:-python3}
REPEAT=${BENCH_REPEAT:-1}
export PYTHONDONTWRITEBYTECODE=1
PINS="polars==2.1.0 duckdb==2.0.0 pyarrow==26.0.1"

say() { printf '\n== %s\n' "$*"; }

# 1. Build ----------------------------------------------------------------------------------
say "building rac and the bare read+write baseline (release)"
cargo build --release --quiet --bin rac --example bare_read_write --example output_floor
RAC=$TARGET/release/rac
BARE=$TARGET/release/examples/bare_read_write
FLOOR=$TARGET/release/examples/output_floor

# 2. Data -----------------------------------------------------------------------------------
STAMP="acts=$N patients=$PATIENTS seed=$SEED format=parquet"
if [[ -f $DATA/.complete && "$(cat "$DATA/.complete")" == "$STAMP" ]]; then
  say "reusing the data set in $DATA ($STAMP)"
else
  say "generating $STAMP into $DATA"
  rm -rf "$DATA" "$DATA.tmp"
  mkdir -p "$(dirname "$DATA")"
  "$RAC" generate --acts "$N" --patients "$PATIENTS" --seed "$SEED" --format parquet --out "$DATA.tmp"
  echo "$STAMP" > "$DATA.tmp/.complete"
  mv "$DATA.tmp" "$DATA"
fi
ls -l "$DATA"/*.parquet

# 3. Peers' venv ----------------------------------------------------------------------------
if (( ! SKIP_PEERS )); then
  if [[ ! -x $VENV/bin/python ]]; then
    say "creating the venv $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  if [[ "$(cat "$VENV/.rac-bench-pins" 2>/dev/null || true)" != "$PINS" ]]; then
    say "installing $PINS into $VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet $PINS
    echo "$PINS" > "$VENV/.rac-bench-pins"
  fi
  PEER_PY=$VENV/bin/python
fi

# 4. Runs -----------------------------------------------------------------------------------
# This run's logs only: the phases table reads every rac*.log there.
rm -rf "$RESULTS/logs"
mkdir -p "$RESULTS/logs" "$RESULTS/out"
: > "$RESULTS/results.tsv"
rm -f "$RESULTS/floor.tsv"
if [[ ${BENCH_TIMER:-auto} != python ]] && /usr/bin/time -v true > /dev/null 2>&1; then
  TIMER="GNU /usr/bin/time -v"
else
  TIMER="scripts/measure.py (getrusage RUSAGE_CHILDREN)"
fi
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git --no-optional-locks status --porcelain 2>/dev/null | grep -q . && echo ' (work tree has changes)' || true)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') × $(nproc)"
  echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
  echo "rustc: $(rustc --version)"
  echo "data: $DATA ($STAMP)"
  echo "timer: $TIMER; runs per command: $REPEAT"
  echo "load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
  if (( ! SKIP_PEERS )); then echo "peers: $("$PEER_PY" -c 'import polars, duckdb, pyarrow, sys; print(f"python {sys.version.split()[0]}, polars {polars.__version__}, duckdb {duckdb.__version__}, pyarrow {pyarrow.__version__}")')"; fi
} > "$RESULTS/env.txt"

# CPU seconds the host took back from this VM so far (`steal` in /proc/stat, every CPU; empty
# where there is none): a run that lost some was slowed by another load, not by itself.
stolen_s() {
  [[ -r /proc/stat ]] || return 0
  awk -v hz="$(getconf CLK_TCK 2>/dev/null || echo 100)" '/^cpu / { printf "%.2f", $9 / hz }' /proc/stat
}

# measure NAME ROWS OK_CODES COMMAND...: runs COMMAND REPEAT times, appends
# "NAME ROWS best_wall max_rss_kib cpu_s_of_the_best_run stolen_s_of_the_best_run" to
# results.tsv.
measure() {
  local name=$1 rows=$2 ok_codes=$3
  shift 3
  local log=$RESULTS/logs/$name.log timing=$RESULTS/logs/$name.time code wall rss cpu
  local best='' best_cpu='' best_stolen='' peak=0 i before stolen
  printf '   %-8s ' "$name"
  for (( i = 1; i <= REPEAT; i++ )); do
    code=0
    before=$(stolen_s)
    if [[ $TIMER == GNU* ]]; then
      local start end
      start=$(date +%s.%N)
      /usr/bin/time -v -o "$timing" "$@" > "$log" 2>&1 || code=$?
      end=$(date +%s.%N)
      wall=$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f", e - s }')
      rss=$(awk -F': *' '/Maximum resident set size/ { print $2 }' "$timing")
      cpu=$(awk -F': *' '/(User|System) time \(seconds\)/ { t += $2 } END { printf "%.2f", t }' "$timing")
    else
      "$PYTHON" scripts/measure.py "$timing" -- "$@" > "$log" 2>&1 || code=$?
      wall=$(cut -f1 "$timing")
      rss=$(cut -f2 "$timing")
      cpu=$(cut -f4 "$timing")
    fi
    stolen=$(awk -v a="$before" -v b="$(stolen_s)" 'BEGIN { if (a != "" && b != "") printf "%.2f", b - a }')
    if [[ " $ok_codes " != *" $code "* ]]; then
      echo "FAILED (exit $code); the end of $log:"
      tail -n 20 "$log" | sed 's/^/     /'
      exit 1
    fi
    if [[ -z $best ]] || awk -v a="$wall" -v b="$best" 'BEGIN { exit !(a < b) }'; then
      best=$wall best_cpu=$cpu best_stolen=$stolen
    fi
    if (( rss > peak )); then peak=$rss; fi
  done
  printf '%8.2f s  %8.1f MiB peak  %7.2f s CPU%s%s\n' "$best" "$(awk -v k="$peak" 'BEGIN { print k / 1024 }')" "$best_cpu" \
    "${best_stolen:+  ($best_stolen s stolen by the host)}" \
    "$([[ $code != 0 ]] && echo "  (exit $code)" || true)$( (( REPEAT > 1 )) && echo "  (best of $REPEAT)" || true)"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$rows" "$best" "$peak" "$best_cpu" "$best_stolen" >> "$RESULTS/results.tsv"
}

# run_rac NAME [ARGS...]: rac compute on $ACTS (the generated acts unless set).
run_rac() {
  local name=$1
  shift
  rm -rf "$RESULTS/out/$name"
  # Exit 3: finished with some rows rejected (rejects.csv), still a full run.
  measure "$name" "$N" "0 3" "$RAC" compute --acts "${ACTS:-$DATA/acts.parquet}" \
    --beneficiaries "$DATA/beneficiaries.parquet" --rights "$DATA/rights.parquet" \
    --out "$RESULTS/out/$name" --format parquet --log-format json ${BENCH_RAC_ARGS:-} "$@"
}

say "warming the page cache"
cat "$DATA"/*.parquet > /dev/null

say "runs ($N acts; timer: $TIMER)"
rm -rf "$RESULTS/out/bare" && mkdir -p "$RESULTS/out/bare"
measure bare "$N" 0 "$BARE" "$DATA/acts.parquet" "$RESULTS/out/bare/acts.parquet"
run_rac rac
# The floor under any run: arrow-rs encoding rac's acts.parquet alone, on one thread (best of
# BENCH_REPEAT), then spread over the cores; not a run of the table, a line of its own.
FLOOR_LOG=$RESULTS/logs/floor.log
: > "$FLOOR_LOG"
for (( i = 1; i <= REPEAT; i++ )); do "$FLOOR" "$RESULTS/out/rac/acts.parquet" >> "$FLOOR_LOG"; done
printf '%s\t%s\n' "$(sed -n 's/.* bytes, \([0-9.]*\) s on one thread.*/\1/p' "$FLOOR_LOG" | sort -g | head -n 1)" \
  "$(nproc)" > "$RESULTS/floor.tsv"
printf '   %-8s %8.2f s on one thread (acts.parquet encode alone)\n' floor "$(cut -f1 "$RESULTS/floor.tsv")"
if (( SCALING )); then
  run_rac rac-1t --threads 1
  run_rac rac-2t --threads 2
fi
if (( SORTED )); then
  SORTED_DATA=$DATA-sorted
  if [[ ! -f $SORTED_DATA/.complete || "$(cat "$SORTED_DATA/.complete")" != "$STAMP" ]]; then
    say "sorting the acts by patient_id into $SORTED_DATA (DuckDB, out of core; not timed)"
    rm -rf "$SORTED_DATA" "$SORTED_DATA.tmp" && mkdir -p "$SORTED_DATA.tmp"
    "$PEER_PY" - "$DATA/acts.parquet" "$SORTED_DATA.tmp" <<'PY'
import sys, duckdb
src, out = sys.argv[1], sys.argv[2]
con = duckdb.connect()
con.execute(f"SET temp_directory = '{out}/duckdb-tmp'; SET preserve_insertion_order = true")
con.execute(f"COPY (SELECT * FROM read_parquet('{src}') ORDER BY patient_id) "
            f"TO '{out}/acts.parquet' (FORMAT parquet, COMPRESSION snappy)")
PY
    rm -rf "$SORTED_DATA.tmp/duckdb-tmp"
    echo "$STAMP" > "$SORTED_DATA.tmp/.complete"
    mv "$SORTED_DATA.tmp" "$SORTED_DATA"
  fi
  cat "$SORTED_DATA/acts.parquet" > /dev/null
  ACTS=$SORTED_DATA/acts.parquet run_rac rac-sorted
fi
if (( ! SKIP_PEERS )); then
  for peer in polars duckdb; do
    rm -rf "$RESULTS/out/$peer"
    measure "$peer" "$N" 0 "$PEER_PY" "scripts/peer/${peer}_rac.py" \
      --acts "$DATA/acts.parquet" --out "$RESULTS/out/$peer"
  done
fi

# 5. Checks (not timed) -----------------------------------------------------------------------
say "checks (not timed)"
CHECKS=$RESULTS/logs/checks.log
{
  "$PYTHON" scripts/peer/check_rac_rounding.py "$RAC"
  if (( ! SKIP_PEERS )); then
    "$PEER_PY" scripts/peer/polars_rac.py --check-rounding
    "$PEER_PY" scripts/peer/duckdb_rac.py --check-rounding
    "$PEER_PY" scripts/peer/compare.py "$RESULTS/out/polars" "$RESULTS/out/duckdb"
  fi
  if (( SORTED )); then
    # Streamed or spilled, the same tables (rejects.csv names rows, which the sort moved).
    for table in acts patients summary counters; do
      cmp "$RESULTS/out/rac/$table.parquet" "$RESULTS/out/rac-sorted/$table.parquet"
    done
    echo "rac on the sorted acts: the same four tables (check passed)"
  fi
} > "$CHECKS" 2>&1 || { echo "a check FAILED; the end of $CHECKS:"; tail -n 30 "$CHECKS"; exit 1; }
grep -E 'check passed|agree' "$CHECKS" | sed 's/^/   /'
grep -h '"step":"done"' "$RESULTS"/logs/rac*.log | sed -e 's/.*"message":"\([^"]*\)".*/\1/' -e 's/^/   /' || true

# 6. Table ----------------------------------------------------------------------------------
echo "load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg) (another load on the machine skews every number)" >> "$RESULTS/env.txt"
say "results"
{
  cat "$RESULTS/env.txt"
  echo
  "$PYTHON" scripts/bench_report.py "$RESULTS/results.tsv" "$RESULTS/floor.tsv"
  echo
  "$PYTHON" scripts/rac_phases.py "$RESULTS"/logs/rac*.log
} | tee "$RESULTS/table.txt"
echo
echo "Results in $RESULTS (table.txt, results.tsv, env.txt, logs/, out/)."
