# qemu-io over nbd://127.0.0.1:PORT/NAME and nbd+unix:///NAME?socket=P:
# pattern writes, zero writes and discards read back the same through
# the export, and leave the file exactly as the same commands run on a
# local copy with qemu-io do.
. "$(dirname "$0")/../lib.sh"
require qemu-io

# The commands, each checked by qemu-io itself (read -P fails, with a
# non-zero exit, on a mismatch).
cmds=(
  -c 'write -P 0xab 0 1M' -c 'read -P 0xab 0 1M'
  -c 'write -P 0x5c 1536k 1M' -c 'read -P 0xab 0 1M'
  -c 'read -P 0x5c 1536k 1M'
  -c 'write -z 1M 256k' -c 'read -P 0 1M 256k' -c 'read -P 0x5c 1536k 1M'
  -c 'write -P 0xcd 4M 2M' -c 'discard 4M 1M' -c 'read -P 0xcd 5M 1M'
  -c 'write -P 0x01 7M 4k' -c 'write -z -u 7M 4k' -c 'read -P 0 7M 4k'
  -c 'write -P 0xef 8388096 512' -c 'read -P 0xef 8388096 512'
  -c 'flush'
)

fresh() {
  rm -f disk.img ref.img
  truncate -s 8M disk.img
  dd if=/dev/urandom of=disk.img bs=64k seek=40 count=2 conv=notrunc status=none
  cp --sparse=always disk.img ref.img
}

check() { # check URI
  qemu-io -f raw "${cmds[@]}" "$1" >"$TMP/io.out" 2>&1 ||
    fail "qemu-io on $1: $(cat "$TMP/io.out")"
  ! grep -qi -e 'fail' -e 'error' "$TMP/io.out" ||
    fail "qemu-io on $1: $(cat "$TMP/io.out")"
  qemu-io -f raw "${cmds[@]}" ref.img >/dev/null || fail "qemu-io on ref.img"
  # Byte for byte, including the discarded megabyte: on a raw file both
  # qemu-io and qnbd punch a hole there.
  cmp disk.img ref.img || fail "file served at $1 differs from the reference"
}

fresh
start_qnbd_tcp -x disk disk.img
check "nbd://127.0.0.1:$PORT/disk"
stop_qnbd

fresh
start_qnbd -x disk disk.img
check "nbd+unix:///disk?socket=$SOCK"
stop_qnbd
