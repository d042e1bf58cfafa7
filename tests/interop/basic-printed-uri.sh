# The URI qnbd prints on start (stdout) is one clients accept as it
# stands: nbdinfo and qemu-img reach the right export through it, also
# when the export name and the socket path need percent-encoding
# (RFC 3986, as the NBD URI specification requires).
. "$(dirname "$0")/../lib.sh"
require nbdinfo qemu-img

truncate -s 1M disk.img

# start_printed ARGS...: start qnbd with ARGS; $uri is its first line.
start_printed() {
  rm -f uri.out
  "$QNBD" "$@" disk.img >uri.out 2>>"$TMP/qnbd.log" &
  QNBD_PID=$!
  _pids+=("$QNBD_PID")
  for _ in $(seq 100); do [ -s uri.out ] && break; sleep 0.1; done
  uri=$(head -n 1 uri.out)
}

check() { # check URI EXPECTED-EXPORT-NAME
  [ "$(nbdinfo --size "$1")" = 1048576 ] || fail "nbdinfo --size '$1' (printed by qnbd)"
  got=$(nbdinfo --json "$1" | /usr/bin/python3 -c '
import json, sys; print(json.load(sys.stdin)["exports"][0]["export-name"])')
  [ "$got" = "$2" ] || fail "'$1' reaches export '$got', not '$2'"
  qemu-img info -f raw "$1" >/dev/null || fail "qemu-img info '$1' (printed by qnbd)"
}

PORT=$(free_port)
start_printed -p "$PORT" -b 127.0.0.1 -x plain
check "$uri" plain
stop_qnbd

PORT=$(free_port)
start_printed -p "$PORT" -b 127.0.0.1 -x 'disk one/ä?x#y'
check "$uri" 'disk one/ä?x#y'
stop_qnbd

start_printed -U "$TMP/a b&c.sock" -x 'x y'
check "$uri" 'x y'
stop_qnbd
