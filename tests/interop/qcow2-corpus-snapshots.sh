# qcow2 corpus: internal snapshots (listed by info, each served read-only
# by name or id, directly and through qnbd --snapshot) and persistent
# dirty bitmaps (listed by info, served as qemu:dirty-bitmap:NAME exactly
# as qemu-nbd serves them).
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/qcow2-lib.bash"
require qemu-nbd nbdinfo

qemu-img create -q -f qcow2 snap.qcow2 4M
qemu-io -f qcow2 -c "write -P 0x11 0 1M" snap.qcow2 >/dev/null
qemu-img snapshot -c first snap.qcow2
qemu-io -f qcow2 -c "write -P 0x22 512k 1M" -c "write -z 0 64k" snap.qcow2 \
  >/dev/null
qemu-img snapshot -c second snap.qcow2
qemu-io -f qcow2 -c "write -P 0x33 3M 64k" -c "discard 1M 64k" snap.qcow2 \
  >/dev/null
qemu-img bitmap --add snap.qcow2 active
qemu-img create -q -f qcow2 -o extended_l2=on snap2.qcow2 2M
qemu-io -f qcow2 -c "write -P 0x44 4k 4k" snap2.qcow2 >/dev/null
qemu-img snapshot -c only snap2.qcow2
qemu-io -f qcow2 -c "write -P 0x45 4k 8k" snap2.qcow2 >/dev/null

qemu-img create -q -f qcow2 bm.qcow2 4M
qemu-img bitmap --add -g 65536 bm.qcow2 b64k
qemu-img bitmap --add -g 4096 bm.qcow2 b4k
qemu-io -f qcow2 -c "write -P 0x51 100k 10k" -c "write -P 0x52 2M 4k" \
  bm.qcow2 >/dev/null
qemu-img bitmap --add --disable bm.qcow2 off
qemu-io -f qcow2 -c "write -P 0x53 3M 4k" bm.qcow2 >/dev/null

check_all snap.qcow2 snap2.qcow2 bm.qcow2
for s in first second 1 2; do check_snapshot snap.qcow2 $s; done
check_snapshot snap2.qcow2 only
if "$QIMG" dump -l nosuch snap.qcow2 >/dev/null 2>err; then
  fail "an unknown snapshot opened"
fi
grep -q "no snapshot" err || fail "no clear message for an unknown snapshot"

# Snapshots through qnbd.
for s in first 2; do
  qemu-img convert -l "snapshot.name=$s" -O raw snap.qcow2 ref.raw 2>/dev/null ||
    qemu-img convert -l "snapshot.id=$s" -O raw snap.qcow2 ref.raw
  start_qnbd -r --snapshot "$s" snap.qcow2
  qemu-img convert -f raw -O raw "$URI" got.raw
  cmp ref.raw got.raw || fail "snapshot $s over NBD differs"
  # The active image's bitmap says nothing about a snapshot.
  nbdinfo --list "$URI" >list
  grep -q "qemu:allocation-depth" list || fail "no allocation depth"
  grep -q "dirty-bitmap" list && fail "a snapshot offers the active bitmaps"
  stop_qnbd
  rm -f "$SOCK"
done

# Dirty bitmaps: every one is offered, and each reads as qemu-nbd's.
start_qnbd -r bm.qcow2
nbdinfo --list "$URI" >list
for b in b64k b4k off; do
  grep -q "qemu:dirty-bitmap:$b" list || fail "bitmap $b not offered"
done
for b in b64k b4k off; do
  bg qemu-nbd -r -t -B "$b" -k "$TMP/ref.sock" bm.qcow2
  wait_for_socket "$TMP/ref.sock"
  nbdinfo --map="qemu:dirty-bitmap:$b" "nbd+unix:///?socket=$TMP/ref.sock" \
    >ref.map
  nbdinfo --map="qemu:dirty-bitmap:$b" "$URI" >got.map
  diff ref.map got.map || fail "bitmap $b differs from qemu-nbd"
  kill "${_pids[-1]}"
  wait "${_pids[-1]}" 2>/dev/null || true
  rm -f "$TMP/ref.sock"
done
grep -q dirty got.map && fail "the disabled bitmap has dirty bits"
nbdinfo --map=qemu:dirty-bitmap:b4k "$URI" | grep -q "102400.*12288.*dirty" ||
  fail "b4k lacks the write at 100k"
stop_qnbd
echo "checked $NIMAGES images"
