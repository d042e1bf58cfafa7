# Shared helpers for script tests: a private temp dir, free ports,
# starting qnbd (or a peer server) and waiting for it, required tools.
# Source it first: . "$(dirname "$0")/../lib.sh"
set -euo pipefail

: "${QNBD:?QNBD must name the qnbd binary (ctest sets it)}"
: "${QNBD_BUILD:=$(dirname "$(dirname "$QNBD")")}"
: "${QNBD_SRC:=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
export PATH=/usr/bin:$PATH # Debian's python3 has the nbd module

TMP=$(mktemp -d "${TMPDIR:-/tmp}/qnbd-test.XXXXXX")
declare -a _pids=()
_cleanup() {
  local rc=$?
  for p in "${_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
    for f in "$TMP"/*.log; do
      [ -f "$f" ] && { echo "--- $f"; tail -n 50 "$f"; }
    done
  fi
  rm -rf "$TMP"
  exit "$rc"
}
trap _cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() {
  if [ "${QNBD_REQUIRE_ALL:-0}" = 1 ]; then fail "required but missing: $*"; fi
  echo "SKIP: $*" >&2; exit 77
}
# require TOOL...: skip (or fail under QNBD_REQUIRE_ALL=1) when missing.
require() { for t in "$@"; do command -v "$t" >/dev/null || skip "$t"; done; }

# free_port: a TCP port nobody listens on right now.
free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_for_port PORT | wait_for_socket PATH: up to 10 s.
wait_for_port() {
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.1
  done
  fail "nothing listens on port $1"
}
wait_for_socket() {
  for _ in $(seq 100); do [ -S "$1" ] && return 0; sleep 0.1; done
  fail "no socket at $1"
}

# start_qnbd ARGS...: qnbd on a fresh Unix socket $SOCK (URI $URI) in
# the background; its log is $TMP/qnbd.log.  Returns once it listens.
start_qnbd() {
  SOCK=$TMP/qnbd.sock
  URI="nbd+unix:///?socket=$SOCK"
  "$QNBD" -U "$SOCK" "$@" >>"$TMP/qnbd.log" 2>&1 &
  QNBD_PID=$!
  _pids+=("$QNBD_PID")
  wait_for_socket "$SOCK"
}

# start_qnbd_tcp ARGS...: the same on a free TCP port $PORT.
start_qnbd_tcp() {
  PORT=$(free_port)
  URI="nbd://127.0.0.1:$PORT"
  "$QNBD" -p "$PORT" -b 127.0.0.1 "$@" >>"$TMP/qnbd.log" 2>&1 &
  QNBD_PID=$!
  _pids+=("$QNBD_PID")
  wait_for_port "$PORT"
}

# bg CMD...: run a helper in the background, killed at exit.
bg() { "$@" & _pids+=("$!"); }

# stop_qnbd: SIGTERM and wait; fails if qnbd did not exit cleanly.
stop_qnbd() {
  kill -TERM "$QNBD_PID"
  local rc=0
  wait "$QNBD_PID" || rc=$?
  [ "$rc" -eq 0 ] || fail "qnbd exited with $rc"
}

cd "$TMP"
