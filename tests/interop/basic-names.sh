# Export names as clients spell them: spaces, '/', '?', '#' and UTF-8,
# percent-encoded in nbd:// and nbd+unix:// URIs (libnbd and QEMU), the
# default export "", an unknown name refused with a clear error, and an
# IPv6 listener (-b ::1).
. "$(dirname "$0")/../lib.sh"
require nbdinfo qemu-img

truncate -s 1M plain.img
truncate -s 2M odd.img
truncate -s 3M def.img
NAME='disk one/ä?x#y'
ENC='disk%20one/%C3%A4%3Fx%23y'

check() { # check BASE SUFFIX
  [ "$(nbdinfo --size "$1/$ENC$2")" = 2097152 ] || fail "nbdinfo $1/$ENC$2"
  [ "$(nbdinfo --size "$1/plain$2")" = 1048576 ] || fail "nbdinfo $1/plain$2"
  [ "$(nbdinfo --size "$1/$2")" = 3145728 ] || fail "nbdinfo $1/$2 (default export)"
  [ "$(nbdinfo --size "$1$2")" = 3145728 ] || fail "nbdinfo $1$2 (no path)"
  qemu-img info --output=json -f raw "$1/$ENC$2" | grep -q '"virtual-size": 2097152' ||
    fail "qemu-img info $1/$ENC$2"
  nbdinfo --list --json "$1/$2" | /usr/bin/python3 -c '
import json, sys
names = sorted(e["export-name"] for e in json.load(sys.stdin)["exports"])
assert names == sorted(["", "plain", sys.argv[1]]), names' "$NAME" ||
    fail "nbdinfo --list $1/$2"
  local rc=0
  nbdinfo --size "$1/nope$2" >/dev/null 2>"$TMP/err" || rc=$?
  [ "$rc" != 0 ] || fail "export 'nope' at $1 exists"
  grep -qi "no export named 'nope'\|unknown export\|not found" "$TMP/err" ||
    fail "unknown export at $1: unclear error: $(cat "$TMP/err")"
}

args=(--export plain=plain.img --export "$NAME=odd.img" def.img)

start_qnbd_tcp "${args[@]}"
check "nbd://127.0.0.1:$PORT" ""
stop_qnbd

start_qnbd "${args[@]}"
check "nbd+unix://" "?socket=$SOCK"
stop_qnbd

if /usr/bin/python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null; then
  PORT=$(free_port)
  "$QNBD" -p "$PORT" -b ::1 "${args[@]}" >>"$TMP/qnbd.log" 2>&1 &
  QNBD_PID=$!
  _pids+=("$QNBD_PID")
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/::1/$PORT") 2>/dev/null && break
    sleep 0.1
  done
  check "nbd://[::1]:$PORT" ""
  stop_qnbd
else
  echo "no IPv6 loopback here: IPv6 part not run"
fi
