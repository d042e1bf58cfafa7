#!/usr/bin/env bash
# Throughput benchmark: qnbd against qemu-nbd and nbdkit serving the same
# image over TCP 127.0.0.1, driven by fio's nbd engine; see README.md.
#
# usage: bench.sh [--quick] [--rows raw[,qcow2]]
#                 [--servers qnbd,qemu-nbd,nbdkit] [--runtime SECONDS]
#                 [--rounds N] [--size SIZE] [--out FILE]
#
# A "row set" (--rows) is a shell function rows_NAME that prepares its
# images and declares its rows with add_row; the runner below knows nothing
# of formats.  Adding a row set is one such function.
set -euo pipefail

usage() {
  sed -n '5,7p' "$0" | sed 's/^# //'
  exit "${1:-2}"
}

# ---- options (before lib.sh, which needs $QNBD) ----
quick=${QNBD_BENCH_QUICK:-0}
rowsets=raw
servers=qnbd,qemu-nbd,nbdkit
runtime='' rounds='' size='' out=''
while [ $# -gt 0 ]; do
  case $1 in
  --quick) quick=1 ;;
  --rows) rowsets=$2; shift ;;
  --rows=*) rowsets=${1#*=} ;;
  --servers) servers=$2; shift ;;
  --servers=*) servers=${1#*=} ;;
  --runtime) runtime=$2; shift ;;
  --rounds) rounds=$2; shift ;;
  --size) size=$2; shift ;;
  --out) out=$2; shift ;;
  -h | --help) usage 0 ;;
  *) echo "bench.sh: unknown argument: $1" >&2; usage ;;
  esac
  shift
done
if [ "$quick" = 1 ]; then
  : "${runtime:=2}" "${rounds:=1}" "${size:=1G}"
  ramp=0
else
  : "${runtime:=10}" "${rounds:=3}" "${size:=4G}"
  ramp=1 # warm-up second, excluded from the figures
fi
[ -n "$out" ] && out=$(realpath -m -- "$out")
IFS=, read -r -a SERVERS <<<"$servers"
for s in "${SERVERS[@]}"; do
  case $s in qnbd | qemu-nbd | nbdkit) ;;
  *) echo "bench.sh: unknown server: $s" >&2; exit 2 ;;
  esac
done

# Outside ctest, find the newest qnbd under build/.  When qnbd is not
# benchmarked lib.sh still wants the variable; nothing runs it then.
here=$(cd "$(dirname "$0")" && pwd)
if [ -z "${QNBD:-}" ]; then
  if [[ ",$servers," == *,qnbd,* ]]; then
    # shellcheck disable=SC2012 # build dir names are ours, plain
    QNBD=$(ls -t "$here"/../../build/*/server/qnbd 2>/dev/null | head -n1 ||
      true)
    [ -n "$QNBD" ] || { echo "bench.sh: set QNBD=/path/to/qnbd" >&2; exit 2; }
    QNBD=$(realpath "$QNBD")
  else
    QNBD=/nonexistent/qnbd
  fi
fi
export QNBD
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$here/../lib.sh"
require fio nbdinfo /usr/bin/python3
for s in "${SERVERS[@]}"; do [ "$s" = qnbd ] || require "$s"; done
fio --enghelp=nbd >/dev/null 2>&1 || skip "fio without the nbd engine"
if [[ ",$servers," == *,qnbd,* ]]; then
  [ -x "$QNBD" ] || fail "qnbd binary not found: $QNBD"
fi
REPORT=$here/report.py
RESULTS=$TMP/results.tsv # row server round status iops bw_bytes cpu_s
ROWS=$TMP/rows.tsv       # row servers description
: >"$RESULTS"
: >"$ROWS"

log() { echo "bench: [${SECONDS}s] $*" >&2; }

# ---- images ----
# make_raw FILE SIZE: preallocated, then filled with non-zero data so that
# reads return real data (and qemu-img convert allocates every cluster).
# The data sits in the page cache afterwards: we compare servers, not disks.
make_raw() {
  fallocate -l "$2" "$1"
  head -c 16M /dev/urandom >"$TMP/chunk"
  local bytes n
  bytes=$(stat -c %s "$1")
  n=$(((bytes + 16777215) / 16777216))
  for _ in $(seq "$n"); do cat "$TMP/chunk"; done |
    dd of="$1" bs=1M count=$((bytes / 1048576)) iflag=fullblock \
      conv=notrunc status=none
  rm -f "$TMP/chunk"
  sync -- "$1"
}

# make_empty_qcow2 FILE SIZE: a new qcow2 with 64 KiB clusters, no data.
make_empty_qcow2() {
  rm -f "$1"
  qemu-img create -q -f qcow2 -o cluster_size=65536 "$1" "$2"
}

# ---- servers ----
# start_server NAME FORMAT IMAGE: NAME serving IMAGE on a free port of
# 127.0.0.1, ready for fio; sets SRV_PID and SRV_URI.  Tries 3 times, as
# another process may take the port between free_port and the bind.
start_server() {
  local try
  for try in 1 2 3; do
    start_server_once "$@" && return 0
    [ "$try" = 3 ] || stop_server
  done
  return 1
}

# Options: each server's defaults (page cache, its own default thread
# count), plus what a user types to keep it serving.
start_server_once() {
  local name=$1 fmt=$2 img=$3 port
  port=$(free_port)
  SRV_URI=nbd://127.0.0.1:$port/
  case $name in
  qnbd) set -- "$QNBD" -p "$port" -b 127.0.0.1 -f "$fmt" "$img" ;;
  # -t: keep serving after the readiness probe disconnects.  cache and
  # aio are qemu-nbd's defaults, spelled out so the report says so.
  qemu-nbd) set -- qemu-nbd -t -b 127.0.0.1 -p "$port" -f "$fmt" \
    --cache=writeback --aio=threads "$img" ;;
  nbdkit)
    [ "$fmt" = raw ] || fail "nbdkit serves raw only here"
    set -- nbdkit -f -i 127.0.0.1 -p "$port" file "$img"
    ;;
  esac
  "$@" >>"$TMP/$name.log" 2>&1 &
  SRV_PID=$!
  _pids+=("$SRV_PID")
  for _ in $(seq 100); do
    kill -0 "$SRV_PID" 2>/dev/null || return 1
    nbdinfo --size "$SRV_URI" >"$TMP/size" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# stop_server: SIGTERM, then SIGKILL after 10 s; forget the pid.
stop_server() {
  kill -TERM "$SRV_PID" 2>/dev/null || true
  for _ in $(seq 100); do
    kill -0 "$SRV_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$SRV_PID" 2>/dev/null || true
  wait "$SRV_PID" 2>/dev/null || true
  forget_pid "$SRV_PID"
}

# forget_pid PID: PID has exited; lib.sh must not signal it at exit.
forget_pid() {
  local keep=() p
  for p in "${_pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  _pids=("${keep[@]}")
}

# qnbd_serves FORMAT IMAGE SIZE RAW [write]: does this qnbd serve IMAGE as
# FORMAT with the right size and RAW's data (and take writes, which
# change IMAGE)?
qnbd_serves() {
  local ok=1
  start_server qnbd "$1" "$2" || ok=0
  if [ "$ok" = 1 ]; then
    [ "$(cat "$TMP/size")" = "$3" ] || ok=0
    /usr/bin/python3 "$REPORT" probe "$SRV_URI" "$4" ${5:+"$5"} || ok=0
  fi
  stop_server
  [ "$ok" = 1 ]
}

# ---- rows ----
declare -a ROW_ID=() ROW_FMT=() ROW_IMG=() ROW_RW=() ROW_BS=() ROW_QD=()
declare -a ROW_SRV=() ROW_FRESH=() ROW_VSIZE=()

# add_row ID FORMAT IMAGE RW BS IODEPTH SERVERS DESCRIPTION [FRESH-CMD]
# FRESH-CMD (optional) recreates IMAGE before every run, for rows that
# must start from the same state (writes into an empty qcow2).
add_row() {
  ROW_ID+=("$1") ROW_FMT+=("$2") ROW_IMG+=("$3") ROW_RW+=("$4")
  ROW_BS+=("$5") ROW_QD+=("$6") ROW_SRV+=("$7") ROW_FRESH+=("${9:-}")
  ROW_VSIZE+=("$(numfmt --from=iec "$size")")
  printf '%s\t%s\t%s\n' "$1" "$7" "$8" >>"$ROWS"
}

# The four standard jobs: NAME RW BS IODEPTH.
JOBS=("randread-4k-qd32 randread 4k 32" "randwrite-4k-qd32 randwrite 4k 32"
  "seqread-1m-qd8 read 1m 8" "seqwrite-1m-qd8 write 1m 8")

# add_jobs PREFIX FORMAT IMAGE SERVERS DESCRIPTION [FILTER-REGEX [FRESH]]
add_jobs() {
  local j name rw bs qd
  for j in "${JOBS[@]}"; do
    read -r name rw bs qd <<<"$j"
    [[ $rw =~ ${6:-.} ]] || continue
    add_row "$1/$name" "$2" "$3" "$rw" "$bs" "$qd" "$4" "$5" "${7:-}"
  done
}

# servers_for FORMAT...: the requested servers able to serve every FORMAT.
servers_for() {
  local s f list=()
  for s in "${SERVERS[@]}"; do
    for f in "$@"; do
      case $s/$f in nbdkit/qcow2) continue 2 ;; esac
    done
    list+=("$s")
  done
  (IFS=,; echo "${list[*]}")
}

rows_raw() {
  log "raw: creating a $size preallocated raw file"
  make_raw "$TMP/raw.img" "$size"
  add_jobs raw raw "$TMP/raw.img" "$(servers_for raw)" \
    "$size preallocated raw file, filled"
}

# qcow2 rows: a fully allocated image with 64 KiB clusters for all four
# jobs, and the two write jobs into an empty image (allocating writes).
# Skipped while qnbd cannot serve qcow2 (the engine arrives in steps):
# the write rows while it serves qcow2 read-only, all rows before that.
rows_qcow2() {
  require qemu-img
  local srv jobs=.
  srv=$(servers_for qcow2)
  if [ -z "$srv" ]; then
    log "SKIP qcow2 rows: none of the requested servers serves qcow2"
    return 0
  fi
  # Ask qnbd first, on a small image, so that a skip costs little.
  if [[ ",$srv," == *,qnbd,* ]]; then
    make_raw "$TMP/probe.raw" 64M
    qemu-img convert -f raw -O qcow2 -o cluster_size=65536 \
      "$TMP/probe.raw" "$TMP/probe.qcow2"
    if ! qnbd_serves qcow2 "$TMP/probe.qcow2" 67108864 "$TMP/probe.raw"; then
      tail -n 5 "$TMP/qnbd.log" >&2
      log "SKIP qcow2 rows: this qnbd does not serve qcow2 (-f qcow2) yet"
      return 0
    fi
    if ! qnbd_serves qcow2 "$TMP/probe.qcow2" 67108864 "$TMP/probe.raw" \
      write; then
      log "SKIP qcow2 write rows: this qnbd serves qcow2 read-only"
      jobs='read'
    fi
    rm -f "$TMP/probe.raw" "$TMP/probe.qcow2"
  fi
  log "qcow2: creating a fully allocated $size qcow2 (64 KiB clusters)"
  make_raw "$TMP/q-src.raw" "$size"
  qemu-img convert -f raw -O qcow2 -o cluster_size=65536 \
    "$TMP/q-src.raw" "$TMP/full.qcow2"
  rm -f "$TMP/q-src.raw"
  sync -- "$TMP/full.qcow2"
  add_jobs qcow2 qcow2 "$TMP/full.qcow2" "$srv" \
    "$size qcow2, 64 KiB clusters, fully allocated" "$jobs"
  [ "$jobs" = . ] || return 0
  add_jobs qcow2-empty qcow2 "$TMP/empty.qcow2" "$srv" \
    "$size qcow2, 64 KiB clusters, empty at the start of every run" \
    write "make_empty_qcow2 $TMP/empty.qcow2 $size"
}

# ---- running ----
# cpu_seconds PID: user + system CPU time of PID and all its threads.
cpu_seconds() {
  # Fields 14 and 15 after the pid and (comm); comm may hold spaces.
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  stat=${stat##*) }
  awk -v t="$(getconf CLK_TCK)" '{printf "%.3f", ($12 + $13) / t}' <<<"$stat"
}

# record ROW SERVER ROUND STATUS [IOPS BW_BYTES CPU_S]: one line of $RESULTS.
record() {
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" \
    "${5:-0}" "${6:-0}" "${7:-0}" >>"$RESULTS"
}

# run_one ROW-INDEX SERVER ROUND: one fio run against a fresh server.
run_one() {
  local i=$1 srv=$2 round=$3 id=${ROW_ID[$1]} res
  [ -z "${ROW_FRESH[$i]}" ] || ${ROW_FRESH[$i]}
  # Dirty pages of the previous write run must not slow this one.
  sync -- "${ROW_IMG[$i]}"
  if ! start_server "$srv" "${ROW_FMT[$i]}" "${ROW_IMG[$i]}"; then
    log "$id $srv: server did not start (see $srv.log)"
    stop_server
    record "$id" "$srv" "$round" nostart
    return
  fi
  if [ "$(cat "$TMP/size")" != "${ROW_VSIZE[$i]}" ]; then
    log "$id $srv: export size $(cat "$TMP/size") != ${ROW_VSIZE[$i]}"
    stop_server
    record "$id" "$srv" "$round" badsize
    return
  fi
  if ! res=$(run_fio "$i" "$TMP/fio-${id//\//_}-$srv-$round.json"); then
    log "$id $srv round $round: FAILED ($res)"
    stop_server
    record "$id" "$srv" "$round" failed
    return
  fi
  stop_server
  # shellcheck disable=SC2086 # res is "IOPS BW_BYTES CPU_S"
  record "$id" "$srv" "$round" ok $res
  log "[$round/$rounds] $id $srv:" "$(awk '{printf "%.0f IOPS %.1f MB/s" \
    " %.1f us CPU/IO", $1, $2 / 1e6, $3 * 1e6 / ($1 * t)}' t="$runtime" \
    <<<"$res")"
}

# run_fio ROW-INDEX JSON: fio against $SRV_URI; prints "IOPS BW_BYTES
# CPU_S", the server's CPU time counted over fio's measured period (after
# the warm-up), or why it failed.
run_fio() {
  local i=$1 json=$2 rnd=() rc=0 cpu0 cpu1 fpid res
  [[ ${ROW_RW[$i]} == rand* ]] && rnd=(--norandommap --randrepeat=0)
  # A hung server must not hang the benchmark (or CI).
  timeout -k 5 $((runtime + ramp + 60)) \
    fio --name="${ROW_ID[$i]}" --ioengine=nbd --uri="$SRV_URI" \
    --rw="${ROW_RW[$i]}" --bs="${ROW_BS[$i]}" --iodepth="${ROW_QD[$i]}" \
    --numjobs=1 "${rnd[@]}" --time_based --runtime="$runtime" \
    --ramp_time="$ramp" --output-format=json --output="$json" \
    >>"$TMP/fio.log" 2>&1 &
  fpid=$!
  _pids+=("$fpid")
  sleep "$ramp"
  cpu0=$(cpu_seconds "$SRV_PID")
  wait "$fpid" || rc=$?
  forget_pid "$fpid"
  cpu1=$(cpu_seconds "$SRV_PID")
  kill -0 "$SRV_PID" 2>/dev/null || { echo "server died"; return 1; }
  [ "$rc" = 0 ] || { echo "fio exit status $rc"; return 1; }
  res=$(/usr/bin/python3 "$REPORT" parse "$json" "${ROW_RW[$i]}" 2>&1) ||
    { echo "$res"; return 1; }
  echo "$res $(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN {printf "%.3f", b - a}')"
}

versions() {
  local v
  echo "BENCH_ENV mode=$([ "$quick" = 1 ] && echo quick || echo full)" \
    "runtime=${runtime}s ramp=${ramp}s rounds=$rounds size=$size" \
    "transport=tcp:127.0.0.1 nproc=$(nproc) kernel=$(uname -r)"
  echo "BENCH_ENV fio=$(fio --version)" \
    "qemu-nbd=$(qemu-nbd --version 2>/dev/null | head -n1 | awk '{print $2}')" \
    "nbdkit=$(nbdkit --version 2>/dev/null | awk '{print $2}')"
  if [[ ",$servers," == *,qnbd,* ]]; then
    v=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' \
      "$(dirname "$(dirname "$QNBD")")/CMakeCache.txt" 2>/dev/null || true)
    echo "BENCH_ENV qnbd=$QNBD build_type=${v:-unknown}"
    case $v in Release | RelWithDebInfo) ;;
    *) log "note: qnbd is a '${v:-unknown}' build;" \
      "use the release preset for real figures" ;;
    esac
  fi
}

main() {
  local set
  IFS=, read -r -a sets <<<"$rowsets"
  for set in "${sets[@]}"; do
    declare -F "rows_$set" >/dev/null || fail "unknown row set: $set"
    "rows_$set"
  done
  [ "${#ROW_ID[@]}" -gt 0 ] || skip "no row set could run"
  versions | tee "$TMP/env.txt"
  local round i s
  # Interleaved: every server runs each row once per round, in turn, so
  # that drifts in machine load hit all servers alike.
  for round in $(seq "$rounds"); do
    for i in "${!ROW_ID[@]}"; do
      IFS=, read -r -a srvs <<<"${ROW_SRV[$i]}"
      for s in "${srvs[@]}"; do run_one "$i" "$s" "$round"; done
    done
  done
  local rc=0
  /usr/bin/python3 "$REPORT" summary "$ROWS" "$RESULTS" "$rounds" \
    "$runtime" >"$TMP/report.txt" || rc=$?
  cat "$TMP/report.txt"
  if [ -n "$out" ]; then cat "$TMP/env.txt" "$TMP/report.txt" >"$out"; fi
  return "$rc"
}

main
