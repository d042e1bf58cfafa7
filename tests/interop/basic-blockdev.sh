# A block device export (a loop device over a file): the size comes from
# the device, qemu-io writes, zeroes and discards, nbdcopy both ways and
# qemu-img compare work, and everything reaches the backing file.  Needs
# root and a free loop device (skipped otherwise).  TCP and Unix.
. "$(dirname "$0")/../lib.sh"
PATH=$PATH:/usr/sbin:/sbin
require losetup qemu-io qemu-img nbdcopy nbdinfo sha256sum

# Root and loop devices are the machine's, not tools CI installs: skip
# even under QNBD_REQUIRE_ALL=1.
no_loop() { echo "SKIP: $*" >&2; exit 77; }
[ "$(id -u)" = 0 ] || no_loop "loop devices need root"
truncate -s 32M backing.img
head -c 32M /dev/urandom >src.img
LOOP=$(losetup -f --show backing.img 2>/dev/null) || no_loop "no free loop device"
trap 'rc=$?; losetup -d "$LOOP" 2>/dev/null; (exit $rc); _cleanup' EXIT
[ -b "$LOOP" ] || fail "$LOOP is not a block device"

check() { # check URI
  [ "$(nbdinfo --size "$1")" = 33554432 ] || fail "nbdinfo --size $1"
  nbdcopy --connections=4 src.img "$1" || fail "nbdcopy src.img $1"
  nbdcopy "$1" out.img || fail "nbdcopy $1 out.img"
  cmp src.img out.img || fail "$1: nbdcopy round trip differs"
  rm -f out.img
  qemu-io -f raw -c 'write -P 0xb1 1M 1M' -c 'read -P 0xb1 1M 1M' \
    -c 'write -z 4M 512k' -c 'read -P 0 4M 512k' -c 'discard 8M 1M' \
    -c 'write -P 0xb2 33553920 512' -c flush "$1" >"$TMP/io.out" ||
    fail "qemu-io on $1: $(cat "$TMP/io.out")"
  qemu-img compare -f raw -F raw "$1" "$LOOP" || fail "qemu-img compare $1 $LOOP"
}

start_qnbd_tcp "$LOOP"
check "$URI/"
stop_qnbd
start_qnbd "$LOOP"
check "$URI"
stop_qnbd

losetup -d "$LOOP"
trap _cleanup EXIT
# The backing file holds the writes and the untouched source bytes.
qemu-io -f raw -c 'read -P 0xb1 1M 1M' -c 'read -P 0 4M 512k' \
  -c 'read -P 0xb2 33553920 512' backing.img >/dev/null ||
  fail "the writes did not reach the loop device's backing file"
cmp -n 1M src.img backing.img || fail "backing file: first MiB differs"
cmp -i 16M -n $((16 * 1048576 - 512)) src.img backing.img ||
  fail "backing file: data after 16 MiB differs"
