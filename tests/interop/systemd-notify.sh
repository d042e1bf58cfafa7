# The notification protocol on a filesystem NOTIFY_SOCKET: READY=1 and
# STOPPING=1; WATCHDOG=1 only when WATCHDOG_PID is unset or qnbd's; a
# malformed NOTIFY_SOCKET is reported and ignored.  Logging: journal
# priority prefixes when JOURNAL_STREAM names stderr, --log overrides,
# and lines about a connection carry its id.
. "$(dirname "$0")/../lib.sh"
require nbdinfo

cat >notify.py <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a") as f:
    print("bound", file=f, flush=True)
    while True:
        f.write(s.recv(4096).decode().replace("\n", "|") + "\n")
        f.flush()
PY
bg /usr/bin/python3 notify.py "$TMP/notify" notify.log
for _ in $(seq 50); do grep -q bound notify.log 2>/dev/null && break; sleep 0.1; done

# run_qnbd LOG ENV...: qnbd on $TMP/s.sock with ENV, as pid $P.
run_qnbd() {
  local log=$1
  shift
  rm -f s.sock
  env "$@" "$QNBD" -v -U "$TMP/s.sock" -f memory 1M 2>"$log" &
  P=$!
  _pids+=("$P")
  wait_for_socket "$TMP/s.sock"
}
stop() {
  kill -TERM "$P"
  local rc=0
  wait "$P" || rc=$?
  [ "$rc" -eq 0 ] || fail "qnbd exited with $rc"
}

# Someone else's watchdog: no pings.
run_qnbd a.log NOTIFY_SOCKET="$TMP/notify" WATCHDOG_USEC=50000 WATCHDOG_PID=1
nbdinfo --size "nbd+unix:///?socket=$TMP/s.sock" >/dev/null
sleep 0.3
stop
grep -q "^READY=1|MAINPID=$P|STATUS=serving 1 exports" notify.log ||
  fail "no READY=1: $(cat notify.log)"
grep -q "^STOPPING=1" notify.log || fail "no STOPPING=1"
! grep -q "^WATCHDOG=1" notify.log || fail "pinged another process's watchdog"
grep -q "WATCHDOG_PID=1 is not us" a.log || fail "no watchdog debug line"

# Lines about a connection carry its id.
grep -E "option|new connection|transmission|client" a.log >conn-lines
[ -s conn-lines ] || fail "no connection lines with -v"
! grep -v ": conn [0-9]*: " conn-lines || fail "a connection line has no id"

# Our own watchdog (the shell's pid becomes qnbd's with exec).
: >notify.log
rm -f s.sock
sh -c 'WATCHDOG_PID=$$ exec "$@"' sh env NOTIFY_SOCKET="$TMP/notify" \
  WATCHDOG_USEC=100000 "$QNBD" -U "$TMP/s.sock" -f memory 1M 2>b.log &
P=$!
_pids+=("$P")
wait_for_socket "$TMP/s.sock"
sleep 0.5
stop
[ "$(grep -c '^WATCHDOG=1$' notify.log)" -ge 3 ] ||
  fail "expected WATCHDOG=1 every 50 ms: $(cat notify.log)"

# A malformed NOTIFY_SOCKET is ignored with a warning.
run_qnbd c.log NOTIFY_SOCKET=relative/path
stop
grep -q "NOTIFY_SOCKET=relative/path: not an absolute path" c.log ||
  fail "no warning: $(cat c.log)"

# The journal's stderr: priority prefixes; --log=stderr wins.
touch d.log
run_qnbd d.log JOURNAL_STREAM="$(stat -c '%d:%i' d.log)"
nbdinfo --size "nbd+unix:///?socket=$TMP/s.sock" >/dev/null
stop
grep -q "^<6>info: shutting down" d.log || fail "no <6> prefix: $(cat d.log)"
grep -q "^<7>debug: conn 1: new connection" d.log || fail "no <7> prefix"
rm -f s.sock
JOURNAL_STREAM="$(stat -c '%d:%i' d.log)" "$QNBD" --log=stderr \
  -U "$TMP/s.sock" -f memory 1M 2>>d.log &
P=$!
_pids+=("$P")
wait_for_socket "$TMP/s.sock"
stop
grep -q "^qnbd: info: shutting down" d.log || fail "--log=stderr ignored"
if "$QNBD" --log=bogus -f memory 1M 2>e.log; then fail "--log=bogus"; fi
grep -q "unknown target 'bogus'" e.log || fail "$(cat e.log)"
echo "systemd-notify: ok"
