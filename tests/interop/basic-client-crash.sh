# Clients that die: fio and nbdcopy killed with SIGKILL mid-transfer, a
# libnbd client that exits with 32 writes unanswered, and one that hangs
# up inside the handshake.  qnbd keeps serving new clients correctly and
# still exits 0 on SIGTERM.  TCP and Unix.
. "$(dirname "$0")/../lib.sh"
require fio nbdcopy qemu-io nbdsh # nbdsh: python3-libnbd

truncate -s 64M disk.img
head -c 64M /dev/urandom >src.img

# killed_after SECONDS CMD...: start CMD, SIGKILL it after SECONDS.
killed_after() {
  local t=$1
  shift
  "$@" >/dev/null 2>&1 &
  local p=$!
  sleep "$t"
  kill -KILL "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}

check() { # check URI
  killed_after 1 fio --name=crash --ioengine=nbd --uri="$1" --rw=randrw \
    --bs=16k --iodepth=32 --numjobs=2 --size=32M --time_based --runtime=30
  killed_after 0.5 nbdcopy --connections=4 src.img "$1"
  /usr/bin/python3 - "$1" <<'PY'
import nbd, os, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
for i in range(32):
    h.aio_pwrite(b"\xee" * 65536, i * 65536)
os._exit(0)
PY
  /usr/bin/python3 - "$1" <<'PY'
import socket, sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
if u.scheme == "nbd+unix":
    s = socket.socket(socket.AF_UNIX)
    s.connect(urllib.parse.parse_qs(u.query)["socket"][0])
else:
    s = socket.create_connection((u.hostname, u.port))
s.recv(18)                                   # NBDMAGIC, IHAVEOPT, flags
s.sendall(b"\0\0\0\3" + b"IHAVEOPT" + b"\0\0\0\7")   # then hang up
s.close()
PY
  kill -0 "$QNBD_PID" || fail "qnbd died after the clients did"
  # A new client still gets correct service.
  qemu-io -f raw -c 'write -P 0x3c 40M 1M' -c 'read -P 0x3c 40M 1M' \
    -c 'read -P 0x3c 40M 4k' "$1" >/dev/null || fail "qemu-io on $1 after the crashes"
  qemu-io -f raw -c 'read -P 0x3c 40M 1M' disk.img >/dev/null ||
    fail "the write after the crashes is not in the file"
  [ "$(nbdinfo --size "$1")" = 67108864 ] || fail "nbdinfo --size $1"
}

start_qnbd_tcp disk.img
check "$URI/"
stop_qnbd

start_qnbd disk.img
check "$URI"
stop_qnbd
[ ! -e "$SOCK" ] || fail "socket file left behind"
