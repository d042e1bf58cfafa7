#!/usr/bin/env bash
# qnbd-img check against qemu-img check: the same verdict, exit code,
# messages and JSON on clean images of the corpus (snapshots, bitmaps,
# compressed clusters, every refcount width...) and on damaged ones;
# images repaired by qnbd-img check -r pass qemu-img check.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
require qemu-img qemu-io
QIMG=$QNBD_BUILD/core/tools/qnbd-img
[ -x "$QIMG" ] || fail "qnbd-img not built at $QIMG"
cd "$TMP"

# same IMG [ARGS]: qnbd-img check and qemu-img check agree exactly.
same() {
  local img=$1 a b
  shift
  for out in human json; do
    a=0 b=0
    "$QIMG" check --output=$out "$@" "$img" >q.out 2>q.err || a=$?
    qemu-img check --output=$out "$@" "$img" >r.out 2>r.err || b=$?
    [ "$a" = "$b" ] || fail "$img ($out): exit $a, qemu-img $b"
    diff r.out q.out || fail "$img ($out): report differs"
    diff r.err q.err || fail "$img ($out): messages differ"
  done
  return "$a"
}

w() { qemu-io -f qcow2 "$@" >/dev/null; }

# Clean images.
qemu-img create -q -f qcow2 -o cluster_size=4k plain.qcow2 2M
w -c "write -P 1 0 64k" -c "write -P 2 512k 4k" -c "write -z 1M 8k" \
  plain.qcow2
cp plain.qcow2 snap.qcow2
qemu-img snapshot -c s1 snap.qcow2
w -c "write -P 3 0 8k" snap.qcow2
qemu-img snapshot -c s2 snap.qcow2
w -c "write -P 4 16k 4k" snap.qcow2
cp plain.qcow2 bitmap.qcow2
qemu-img bitmap --add bitmap.qcow2 b0
qemu-img bitmap --add -g 4096 bitmap.qcow2 b1
qemu-io -c "write -P 5 0 32k" bitmap.qcow2 >/dev/null
qemu-img convert -c -O qcow2 -o cluster_size=4k plain.qcow2 zlib.qcow2
qemu-img convert -c -O qcow2 -o compression_type=zstd plain.qcow2 zstd.qcow2
imgs=(plain snap bitmap zlib zstd)
for rb in 1 8 64; do
  qemu-img create -q -f qcow2 -o refcount_bits=$rb,cluster_size=512 rb$rb.qcow2 1M
  w -c "write -P 6 0 100k" rb$rb.qcow2
  imgs+=(rb$rb)
done
qemu-img create -q -f qcow2 -o preallocation=metadata,extended_l2=on pre.qcow2 2M
qemu-img create -q -f qcow2 -o data_file=pre.raw,data_file_raw=on ext.qcow2 1M
qemu-img create -q -f qcow2 -o compat=0.10 v2.qcow2 1M
w -c "write -P 7 0 128k" v2.qcow2
"$QIMG" create -o cluster_size=1k,preallocation=metadata,refcount_bits=2 \
  ours.qcow2 1M >/dev/null
imgs+=(pre ext v2 ours)
for i in "${imgs[@]}"; do same "$i.qcow2" || fail "$i: not clean"; done

# Damage, at the host offsets qemu-img map gives.
host() { # host offset of guest offset $2 in $1
  qemu-img map --output=json "$1" | /usr/bin/python3 -c '
import json, sys
g = int(sys.argv[1])
for e in json.load(sys.stdin):
    if e["start"] <= g < e["start"] + e["length"] and "offset" in e:
        print(e["offset"] + g - e["start"]); break' "$2"
}
l1_of() { /usr/bin/python3 -c '
import struct, sys
h = open(sys.argv[1], "rb").read(104)
print(struct.unpack(">Q", h[40:48])[0], struct.unpack(">Q", h[48:56])[0])' "$1"; }
poke() { printf "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }

# A leak: the L2 entry of guest cluster 1 zeroed.
cp plain.qcow2 leak.qcow2
read -r l1 rt < <(l1_of leak.qcow2)
l2=$(($(od -An -tx8 --endian=big -j "$l1" -N8 leak.qcow2 | tr -d ' ' |
  sed 's/^/0x/') & 0xfffffffffffe00))
poke leak.qcow2 $((l2 + 8)) '\0\0\0\0\0\0\0\0'
rc=0; same leak.qcow2 || rc=$?
[ "$rc" = 3 ] || fail "leak: exit $rc"

# A refcount lowered to 0 for a used data cluster (16-bit refcounts).
cp plain.qcow2 low.qcow2
rb=$(($(od -An -tx8 --endian=big -j "$rt" -N8 low.qcow2 | tr -d ' ' |
  sed 's/^/0x/')))
d=$(host low.qcow2 8192)
poke low.qcow2 $((rb + d / 4096 * 2)) '\0\0'
rc=0; same low.qcow2 || rc=$?
[ "$rc" = 2 ] || fail "low refcount: exit $rc"

# The COPIED bit cleared in an L2 entry and in an L1 entry.
cp plain.qcow2 copied.qcow2
poke copied.qcow2 $((l2 + 16)) '\0'
poke copied.qcow2 "$l1" '\0'
rc=0; same copied.qcow2 || rc=$?
[ "$rc" = 2 ] || fail "COPIED: exit $rc"

# A leak in an image with snapshots (shared clusters, refcount 2).
cp snap.qcow2 snapleak.qcow2
read -r l1 rt < <(l1_of snapleak.qcow2)
l2=$(($(od -An -tx8 --endian=big -j "$l1" -N8 snapleak.qcow2 | tr -d ' ' |
  sed 's/^/0x/') & 0xfffffffffffe00))
poke snapleak.qcow2 $((l2 + 4 * 8)) '\0\0\0\0\0\0\0\0'
rc=0; same snapleak.qcow2 || rc=$?
[ "$rc" = 3 ] || fail "snapshot leak: exit $rc"

# Misaligned offsets in an L1 and an L2 entry: the same verdict (the
# counts differ: qemu-img also follows the misaligned offsets).
verdict() {
  local a=0 b=0
  "$QIMG" check "$1" >/dev/null 2>&1 || a=$?
  qemu-img check "$1" >/dev/null 2>&1 || b=$?
  [ "$a" = "$b" ] || fail "$1: exit $a, qemu-img $b"
  [ "$a" = 2 ] || fail "$1: corruption not found"
}
cp plain.qcow2 badl1.qcow2
read -r l1 rt < <(l1_of badl1.qcow2)
poke badl1.qcow2 $((l1 + 6)) '\x02'
verdict badl1.qcow2
cp plain.qcow2 badl2.qcow2
l2=$(($(od -An -tx8 --endian=big -j "$l1" -N8 badl2.qcow2 | tr -d ' ' |
  sed 's/^/0x/') & 0xfffffffffffe00))
poke badl2.qcow2 $((l2 + 14)) '\x02'
verdict badl2.qcow2

# A dirty image with lazy refcounts (qemu-io killed mid-way): refcounts
# missing, COPIED flags then wrong.
qemu-img create -q -f qcow2 -o lazy_refcounts=on dirty.qcow2 2M
(qemu-io -f qcow2 -c "write -P 0x55 64k 64k" -c "sigraise 9" dirty.qcow2 ||
  true) >/dev/null 2>&1
rc=0; same dirty.qcow2 || rc=$?
[ "$rc" = 2 ] || fail "dirty: exit $rc"

# qnbd-img check -r leaks says what qemu-img check -r leaks says.
cp leak.qcow2 a.qcow2
cp leak.qcow2 b.qcow2
qemu-img check -r leaks a.qcow2 >ra.out 2>ra.err
"$QIMG" check -r leaks b.qcow2 >rb.out 2>rb.err || fail "-r leaks: exit $?"
diff ra.out rb.out || fail "-r leaks: report differs"
diff ra.err rb.err || fail "-r leaks: messages differ"

# Repairs: the repaired image passes qemu-img check, and the data of
# the clusters still referenced is intact.
for f in leak low copied snapleak dirty; do
  for mode in leaks all; do
    cp $f.qcow2 fix.qcow2
    rc=0
    "$QIMG" check -r $mode fix.qcow2 >fix.out 2>fix.err || rc=$?
    if [ $mode = all ] || [ $f = leak ] || [ $f = snapleak ]; then
      [ "$rc" = 0 ] || fail "$f -r $mode: exit $rc: $(cat fix.out fix.err)"
      qemu-img check fix.qcow2 >chk.out 2>&1 ||
        fail "$f -r $mode: qemu-img check: $(cat chk.out)"
      grep -q "Double checking the fixed image now" fix.out ||
        fail "$f -r $mode: no repair report"
    else
      [ "$rc" = 2 ] || fail "$f -r leaks: exit $rc (corruption left)"
    fi
  done
  qemu-img convert -O raw fix.qcow2 fix.raw
  qemu-img convert -O raw $f.qcow2 orig.raw
  cmp -s fix.raw orig.raw || fail "$f: repair changed the data"
done
# JSON of a repair: the fixed counters.
cp leak.qcow2 fix.qcow2
"$QIMG" check -r leaks --output=json fix.qcow2 >fix.json 2>/dev/null
grep -q '"leaks-fixed": 1' fix.json || fail "no leaks-fixed in $(cat fix.json)"
# A full repair of the dirty image makes it clean again.
cp dirty.qcow2 fix.qcow2
"$QIMG" check -r all fix.qcow2 >/dev/null 2>&1 || fail "dirty -r all"
qemu-img info --output=json fix.qcow2 | grep -q '"dirty-flag": false' ||
  fail "dirty bit left set after a full repair"

# A refcount block lost (its reftable entry zeroed): -r all appends a
# new one, and the image is clean again with its data intact.
qemu-img create -q -f qcow2 -o cluster_size=512 norb.qcow2 1M
w -c "write -P 8 0 400k" norb.qcow2
read -r l1 rt < <(l1_of norb.qcow2)
cp norb.qcow2 norb-fix.qcow2
poke norb-fix.qcow2 $((rt + 16)) '\0\0\0\0\0\0\0\0'
rc=0; same norb-fix.qcow2 || rc=$?
[ "$rc" = 2 ] || fail "lost refcount block: exit $rc"
"$QIMG" check -r all norb-fix.qcow2 >/dev/null 2>&1 ||
  fail "lost refcount block: not repaired"
qemu-img check norb-fix.qcow2 >chk.out 2>&1 ||
  fail "lost refcount block: qemu-img check: $(cat chk.out)"
qemu-img compare norb.qcow2 norb-fix.qcow2 >/dev/null ||
  fail "lost refcount block: data changed"

# Not an image we can check, or no image at all.
"$QIMG" check nosuch.qcow2 2>/dev/null && fail "missing file accepted"
head -c 1M /dev/zero >raw.img
rc=0; "$QIMG" check raw.img 2>/dev/null || rc=$?
[ "$rc" != 0 ] || fail "raw image checked"
echo "ok: ${#imgs[@]} clean images, 5 damaged"
