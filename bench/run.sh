#!/usr/bin/env bash
# `make bench`: every benchmark in turn, then bench/RESULTS.md (bench/report.js).
#
#   bench/run.sh [BUILD_DIR]          (make bench passes "build")
#   BENCH_ONLY="startup ingest" bench/run.sh build     a subset (names below)
#
# Each benchmark runs under a time limit and writes KEY=VALUE lines to bench/out/;
# one that fails or overruns is reported as such and the others still run. All load
# goes to 127.0.0.1. On the 2-core reference machine the whole run takes about 8
# minutes (see BUDGET below).
set -u
cd "$(dirname "$0")/.."
export BUILD=${1:-build}
export RESULTS_DIR="$PWD/bench/out"
export FOX_BENCH_ROOT="$PWD"
ALL="startup memory_idle fanout throughput throughput_capped throughput_light profile ingest reload correlate memory experiments"
ONLY=${BENCH_ONLY:-$ALL}
rm -rf "$RESULTS_DIR" bench/out-exp
mkdir -p "$RESULTS_DIR"
T0=$(date +%s)
{
  echo "command=${BENCH_COMMAND:-make bench (bench/run.sh $BUILD)}"
  echo "started=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- src scripts 2>/dev/null || echo '+changes')"
  echo "load_start=$(cut -d' ' -f1-3 /proc/loadavg)"
} > "$RESULTS_DIR/run.env"

# The whole run stays within BENCH_BUDGET seconds (default 560: `make bench` must end
# within 10 minutes on a 2-core machine, deps and build included): a step gets at most
# what is left, and one that cannot start with 20 s left is skipped (RESULTS.md says so).
BUDGET=${BENCH_BUDGET:-560}

# step NAME LIMIT_SECONDS COMMAND...
step() {
  local name=$1 limit=$2; shift 2
  case " $ONLY " in *" $name "*) ;; *) return 0 ;; esac
  local t=$(date +%s)
  local left=$(( BUDGET - (t - T0) ))
  if [ "$left" -lt 20 ]; then
    echo "== $name skipped: the time budget is spent" >&2
    echo "step_${name}_rc=skipped" >> "$RESULTS_DIR/run.env"
    return 0
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "== $name (limit ${limit}s)" >&2
  timeout --kill-after=10 "$limit" "$@" 2> "$RESULTS_DIR/$name.log"
  local rc=$?
  tail -n 3 "$RESULTS_DIR/$name.log" | sed 's/^/   /' >&2
  echo "step_${name}_rc=$rc" >> "$RESULTS_DIR/run.env"
  echo "step_${name}_s=$(( $(date +%s) - t ))" >> "$RESULTS_DIR/run.env"
  [ $rc -eq 0 ] || echo "   $name: exit status $rc (see bench/out/$name.log)" >&2
}

profile_step() {
  # the CPU of one investigation of the demo story, by module (bench/profile.lua)
  source bench/lib.sh
  bench_init profile
  start_all_fakes 0 demo
  write_config "$BW/fox.conf.lua" 8
  "$FOX" run bench/profile.lua "$BW/fox.conf.lua" INC-2 10 40 "$RESULTS_DIR/profile.env" \
    > "$RESULTS_DIR/profile.txt" 2>> "$RESULTS_DIR/profile.log"
  # the same with the log sources capped: the CPU per log line is the difference
  LOG_CAP=100 write_config "$BW/capped.conf.lua" 8
  "$FOX" run bench/profile.lua "$BW/capped.conf.lua" INC-2 10 0 "$RESULTS_DIR/profile.env" capped \
    > "$RESULTS_DIR/profile-capped.txt" 2>> "$RESULTS_DIR/profile.log"
}

memory_idle_step() {
  # fox serve just started, nothing else: RSS, PSS, the largest mappings
  source bench/lib.sh
  bench_init memory_idle
  write_config "$BW/fox.conf.lua" 8
  start_fox "$BW/fox.conf.lua"
  sleep 1
  awk '/^[0-9a-f]+-[0-9a-f]+ / { name = $6 ? $6 : "[anon]" } /^Rss:/ { rss[name] += $2 }
       END { for (n in rss) printf "%d %s\n", rss[n], n }' "/proc/$FOX_PID/smaps" | sort -rn | head -8 \
    | awk '{ n = $2; sub(/.*\//, "", n); printf "%s%s %d KiB", (NR > 1 ? ", " : ""), n, $1 }' > "$RESULTS_DIR/mappings.txt"
  result idle_mappings "$(cat "$RESULTS_DIR/mappings.txt")"
  result idle_libs "$(awk '$6 ~ /\.so/ { print $6 }' "/proc/$FOX_PID/maps" | sort -u | wc -l)"
  # the floor: a program linked with fox's libraries that does nothing but start libcurl
  cc -O2 -o "$BW/rss_floor" -Wl,--no-as-needed bench/rss_floor.c \
    $(pkg-config --libs lua5.4 libevent libcurl libcrypto sqlite3 libedit) -lm -ldl
  "$BW/rss_floor" >> "$RESULTS_DIR/memory_idle.env"
  result floor_libs "$(ldd "$BW/rss_floor" | wc -l)"
  result fox_libs "$(ldd "$FOX" | wc -l)"
}

experiments_step() {
  # Proposed changes to fox, measured against the unchanged tree in this run
  # (bench/experiment.sh; the diffs are in bench/experiments/). Cheap sizes only.
  local x=bench/experiment.sh
  $x none -- env INGEST_SIDES=fox bench/ingest.sh 4 32 &&
  $x nofsync -- env INGEST_SIDES=fox bench/ingest.sh 4 32
  # one line per experiment directory for the report
  local d
  for d in bench/out-exp/*/; do
    cat "$d"*.env 2>/dev/null | sed "s|^|exp_$(basename "$d" | tr '+-' '__')_|"
  done > "$RESULTS_DIR/experiments.env"
}

step startup 60 bench/startup.sh 10
step memory_idle 30 bash -c "$(declare -f memory_idle_step); memory_idle_step"
step fanout 120 bench/fanout.sh 5 100
step throughput 120 bench/throughput.sh 30 16 full
step throughput_capped 120 env LOG_CAP=100 bench/throughput.sh 100 16 capped
step throughput_light 60 env BENCH_PLAYBOOK=light bench/throughput.sh 600 16 light
step profile 90 bash -c "$(declare -f profile_step); profile_step"
step ingest 120 bench/ingest.sh 6 32
step reload 90 bench/reload.sh 10 100
step correlate 330 env FOX_SHARED_MAX_BYTES=512M "$BUILD/fox" run bench/correlate.lua \
  1000,10000,50000,100000 "$RESULTS_DIR/correlate.env"
step memory 240 bench/memory.sh 1000 8000
step experiments 150 bash -c "FOX=$BUILD/fox; $(declare -f experiments_step); experiments_step"

echo "total_s=$(( $(date +%s) - T0 ))" >> "$RESULTS_DIR/run.env"
echo "load_end=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$RESULTS_DIR/run.env"
node bench/report.js "$RESULTS_DIR" > bench/RESULTS.md
echo "bench: wrote bench/RESULTS.md ($(( $(date +%s) - T0 )) s)" >&2
