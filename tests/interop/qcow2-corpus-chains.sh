# qcow2 corpus: backing chains of depth 3 with mixed formats (raw base,
# a probed backing format, relative names, a backing file shorter than
# its overlay).  Bytes, maps, info and base:allocation as qemu-img
# reports them; qemu:allocation-depth as qemu-nbd reports it.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/qcow2-lib.bash"
require qemu-nbd nbdinfo

# Chain A: raw <- qcow2 <- qcow2 (extended L2, larger than its base).
truncate -s 4M a-base.raw
dd if=/dev/urandom of=a-base.raw bs=64k seek=1 count=3 conv=notrunc status=none
dd if=/dev/urandom of=a-base.raw bs=64k seek=40 count=1 conv=notrunc status=none
qemu-img create -q -f qcow2 -b a-base.raw -F raw a-mid.qcow2 4M
qemu-io -f qcow2 -c "write -P 0x21 128k 64k" -c "write -z 2560k 64k" \
  -c "write -P 0x22 3M 4k" a-mid.qcow2 >/dev/null
qemu-img create -q -f qcow2 -o extended_l2=on -b a-mid.qcow2 -F qcow2 \
  a-top.qcow2 6M
qemu-io -f qcow2 -c "write -P 0x31 70k 2k" -c "write -z 3M 2k" \
  -c "write -P 0x32 5M 64k" a-top.qcow2 >/dev/null

# Chain B, in a subdirectory with relative names: qcow2 v2 <- qcow2
# whose backing format is left to probing <- qcow2; the base is short.
mkdir sub
qemu-img create -q -f qcow2 -o compat=0.10 sub/b-base.qcow2 1M
qemu-io -f qcow2 -c "write -P 0x41 0 512k" sub/b-base.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b b-base.qcow2 -F qcow2 sub/b-mid.qcow2 2M
# Rename the backing format extension to an unknown type: the format of
# sub/b-base.qcow2 must then be probed (qemu does the same).
/usr/bin/python3 - sub/b-mid.qcow2 <<'PY'
import struct, sys
with open(sys.argv[1], "r+b") as f:
    hdr = f.read(4096)
    off = struct.unpack(">I", hdr[100:104])[0]
    while True:
        t, l = struct.unpack(">II", hdr[off:off + 8])
        if t == 0:
            sys.exit("no backing format extension")
        if t == 0xE2792ACA:
            f.seek(off)
            f.write(struct.pack(">I", 0x7A7A7A7A))
            break
        off += 8 + (l + 7) // 8 * 8
PY
qemu-io -f qcow2 -c "write -P 0x42 256k 64k" sub/b-mid.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b sub/b-mid.qcow2 -F qcow2 b-top.qcow2 3M
qemu-io -f qcow2 -c "write -z 0 64k" -c "write -P 0x43 1536k 4k" \
  b-top.qcow2 >/dev/null

imgs=(a-mid.qcow2 a-top.qcow2 sub/b-mid.qcow2 b-top.qcow2)
# qnbd-img also describes the raw base as qemu-img does.
for img in a-base.raw "${imgs[@]}"; do check_engine "$img"; done
# The whole chain as qemu-img info --backing-chain reports it.
qemu-img info --backing-chain --output=json b-top.qcow2 >ref.chain
"$QIMG" info --backing-chain --output=json b-top.qcow2 >got.chain
/usr/bin/python3 -c '
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
sys.exit(a != b)' ref.chain got.chain || fail "backing chain info differs"
verify_nbd "${imgs[@]}"
# The same, literally with qemu-img map over qnbd's export.
for img in "${imgs[@]}"; do
  start_qnbd -r "$img"
  check_qemu_map "$URI" "$img" || fail "$img: qemu-img map over NBD differs"
  stop_qnbd
  rm -f "$SOCK"
done

# qemu:allocation-depth, qnbd against qemu-nbd.
for img in a-top.qcow2 b-top.qcow2; do
  bg qemu-nbd -r -t -A -k "$TMP/ref.sock" "$img"
  wait_for_socket "$TMP/ref.sock"
  nbdinfo --map=qemu:allocation-depth "nbd+unix:///?socket=$TMP/ref.sock" \
    >ref.depth
  start_qnbd -r "$img"
  nbdinfo --map=qemu:allocation-depth "$URI" >got.depth
  diff ref.depth got.depth || fail "$img: allocation depth differs"
  stop_qnbd
  kill "${_pids[-2]}"
  rm -f "$TMP/ref.sock" "$SOCK"
done
grep -q "backing depth 3" ref.depth || fail "chain B did not reach depth 3"

# A backing loop is refused.
qemu-img create -q -f qcow2 loop1.qcow2 1M
qemu-img create -q -f qcow2 -b loop1.qcow2 -F qcow2 loop2.qcow2 1M
qemu-img rebase -u -b loop2.qcow2 -F qcow2 loop1.qcow2
if "$QIMG" info loop2.qcow2 2>loop.err; then fail "a backing loop opened"; fi
grep -q "loop" loop.err || { cat loop.err; fail "no clear loop message"; }
echo "checked $NIMAGES images"
