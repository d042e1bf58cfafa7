# Socket activation (LISTEN_FDS/LISTEN_PID): qnbd started by
# systemd-socket-activate on a TCP port, on a Unix socket and on both at
# once (LISTEN_FDS=2) serves qemu-io, qemu-img and nbdinfo clients
# (several connections, one process), exits 0 on SIGTERM and leaves the
# socket it was handed; libnbd's `[ CMD ]` form (nbdinfo, nbdcopy)
# starts qnbd the same way on a private socket.
. "$(dirname "$0")/../lib.sh"
require systemd-socket-activate qemu-io qemu-img nbdinfo nbdcopy

truncate -s 8M disk.img
dd if=/dev/urandom of=disk.img bs=64k seek=3 count=2 conv=notrunc status=none

# activated ADDR ARGS...: qnbd under systemd-socket-activate on ADDR.
activated() {
  local addr=$1
  shift
  systemd-socket-activate -l "$addr" "$QNBD" "$@" >>"$TMP/qnbd.log" 2>&1 &
  QNBD_PID=$!
  _pids+=("$QNBD_PID")
}

check() { # check URI: writes, reads and flags through the activated qnbd
  qemu-io -f raw -c 'write -P 0x77 1M 256k' -c 'read -P 0x77 1M 256k' \
    -c 'write -z 6M 64k' -c flush "$1" >/dev/null || fail "qemu-io on $1"
  qemu-io -f raw -c 'read -P 0x77 1M 256k' disk.img >/dev/null ||
    fail "write through $1 is not in the file"
  qemu-img compare -q -f raw -F raw "$1" disk.img ||
    fail "qemu-img compare $1 disk.img"
  [ "$(nbdinfo --size "$1")" = 8388608 ] || fail "nbdinfo --size $1"
  nbdinfo --can multi-conn "$1" || fail "nbdinfo --can multi-conn $1"
  nbdcopy --connections=4 "$1" out.img
  cmp disk.img out.img || fail "nbdcopy $1 out.img"
  rm -f out.img
}

PORT=$(free_port)
activated "127.0.0.1:$PORT" -x act disk.img
wait_for_port "$PORT"
check "nbd://127.0.0.1:$PORT/act"
stop_qnbd

SOCK=$TMP/act.sock
activated "$SOCK" -x act disk.img
wait_for_socket "$SOCK"
check "nbd+unix:///act?socket=$SOCK"
stop_qnbd
# The socket belongs to whoever passed it (systemd keeps listening on it
# to start the service again): qnbd must not remove it.
[ -S "$SOCK" ] || fail "qnbd removed the socket it was handed ($SOCK)"

# Two sockets at once (LISTEN_FDS=2): a TCP port and a Unix socket.
PORT=$(free_port)
SOCK=$TMP/both.sock
systemd-socket-activate -l "127.0.0.1:$PORT" -l "$SOCK" "$QNBD" -x act disk.img \
  >>"$TMP/qnbd.log" 2>&1 &
QNBD_PID=$!
_pids+=("$QNBD_PID")
wait_for_port "$PORT"
check "nbd://127.0.0.1:$PORT/act"
check "nbd+unix:///act?socket=$SOCK"
stop_qnbd

# libnbd's socket activation: it makes the socket, sets LISTEN_FDS and
# runs the command.
got=$(nbdinfo --size -- [ "$QNBD" disk.img ])
[ "$got" = 8388608 ] || fail "nbdinfo --size -- [ qnbd ]: $got"
nbdinfo --map -- [ "$QNBD" disk.img ] >map.txt
grep -qw data map.txt || fail "nbdinfo --map -- [ qnbd ]: $(cat map.txt)"
grep -q hole map.txt || fail "nbdinfo --map -- [ qnbd ]: $(cat map.txt)"
head -c 8M /dev/urandom >src.img
nbdcopy -- src.img [ "$QNBD" disk.img ]
cmp src.img disk.img || fail "nbdcopy src.img -- [ qnbd disk.img ]"
nbdcopy -- [ "$QNBD" -r disk.img ] out.img
cmp src.img out.img || fail "nbdcopy [ qnbd -r disk.img ] out.img"
