#!/usr/bin/env bash
# qnbd-img create: every option of the qcow2 validation corpus makes an
# image that qemu-img check finds clean, that qemu-io reads and writes,
# and whose qemu-img info matches that of qemu-img create's image.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
require qemu-img qemu-io
QIMG=$QNBD_BUILD/core/tools/qnbd-img
[ -x "$QIMG" ] || fail "qnbd-img not built at $QIMG"
cd "$TMP"

# The properties qemu-img info reports, without file names and sizes.
props() {
  qemu-img info --output=json "$1" |
    sed -e '/"filename"\|"actual-size"\|"data-file"/d' | tr -d ' \n'
}

# try OPTS SIZE: create with qnbd-img and with qemu-img, compare.
n=0
try() {
  local o=$1 size=$2
  n=$((n + 1))
  rm -f a.qcow2 b.qcow2 a.raw b.raw
  "$QIMG" create -f qcow2 -o "${o//@/a}" a.qcow2 "$size" >/dev/null ||
    fail "[$o] qnbd-img create failed"
  qemu-img create -q -f qcow2 -o "${o//@/b}" b.qcow2 "$size" ||
    fail "[$o] qemu-img create failed"
  qemu-img check a.qcow2 >check.log 2>&1 ||
    fail "[$o] qemu-img check: $(cat check.log)"
  "$QIMG" check a.qcow2 >check.log 2>&1 ||
    fail "[$o] qnbd-img check: $(cat check.log)"
  [ "$(props a.qcow2)" = "$(props b.qcow2)" ] ||
    fail "[$o] info differs: $(props a.qcow2) vs $(props b.qcow2)"
  qemu-io -f qcow2 -c "write -P 0x5a 4k 132k" -c "read -P 0x5a 4k 132k" \
    -c "read -P 0 200k 4k" a.qcow2 >io.log 2>&1 ||
    fail "[$o] qemu-io: $(cat io.log)"
  grep -q "Pattern verification failed" io.log && fail "[$o] bad pattern"
  qemu-img check a.qcow2 >check.log 2>&1 ||
    fail "[$o] qemu-img check after writes: $(cat check.log)"
}

# Each option value at least once, combined to keep the test short.
try compat=0.10 1M
try compat=0.10,preallocation=metadata,cluster_size=4k 5M
try cluster_size=512,refcount_bits=1,preallocation=metadata 2M
try cluster_size=1k,refcount_bits=2 3M
try cluster_size=4k,refcount_bits=4,lazy_refcounts=on 3M
try cluster_size=64k,refcount_bits=8,preallocation=falloc 3M
try cluster_size=2M,refcount_bits=32,preallocation=full 3M
try refcount_bits=64,compat=1.1,preallocation=metadata 3M
try extended_l2=on,cluster_size=16k,preallocation=metadata 1M
try extended_l2=on,compression_type=zstd 1M
try compression_type=zlib,preallocation=off 1M
try data_file=@.raw 1M
try data_file=@.raw,data_file_raw=on 1M
try data_file=@.raw,data_file_raw=on,preallocation=full 1M
# Enough refcount blocks that the reftable spans several clusters.
try cluster_size=512,refcount_bits=64,preallocation=metadata 8M
# QEMU rounds the virtual size up to whole sectors.
"$QIMG" create -o cluster_size=512 odd.qcow2 1000 >/dev/null || fail "odd size"
qemu-img info odd.qcow2 | grep -q "(1024 bytes)" || fail "size not rounded"
qemu-img check odd.qcow2 >/dev/null || fail "odd: check"
try compat=0.10,preallocation=metadata,cluster_size=4k 5M
# Enough refcount blocks that the reftable spans several clusters.
try cluster_size=512,refcount_bits=64,preallocation=metadata 8M

# Backing files: the size defaults to the backing file's.
"$QIMG" create -f raw base.raw 5M >/dev/null || fail "raw create"
[ "$(stat -c %s base.raw)" = 5242880 ] || fail "raw size"
[ "$(stat -c %b base.raw)" -le 8 ] || fail "raw file is not sparse"
qemu-io -f raw -c "write -P 0x11 0 1M" base.raw >/dev/null
"$QIMG" create -f qcow2 -b base.raw -F raw top.qcow2 >/dev/null ||
  fail "create with backing"
qemu-img check top.qcow2 >/dev/null || fail "top: check"
qemu-img info --output=json top.qcow2 >top.json
grep -q '"virtual-size": 5242880' top.json || fail "top: size"
grep -q '"backing-filename-format": "raw"' top.json || fail "top: fmt"
qemu-io -f qcow2 -c "read -P 0x11 0 1M" top.qcow2 | grep -q verification &&
  fail "top: backing data not read"
"$QIMG" create -f qcow2 -b top.qcow2 -F qcow2 -o cluster_size=4k top2.qcow2 \
  8M >/dev/null || fail "create with qcow2 backing"
qemu-img compare base.raw top.qcow2 >/dev/null || fail "top: compare"
# Preallocated clusters over a backing file (extended L2): subclusters
# unallocated, so the backing data still shows, as with qemu-img.
"$QIMG" create -f qcow2 -b base.raw -F raw \
  -o extended_l2=on,preallocation=metadata pre.qcow2 >/dev/null ||
  fail "create preallocated over a backing file"
qemu-img create -q -f qcow2 -b base.raw -F raw \
  -o extended_l2=on,preallocation=metadata pre-ref.qcow2
qemu-img check pre.qcow2 >/dev/null || fail "pre: check"
[ "$(qemu-img map --output=json pre.qcow2)" = \
  "$(qemu-img map --output=json pre-ref.qcow2)" ] || fail "pre: map differs"
qemu-img compare base.raw pre.qcow2 >/dev/null || fail "pre: compare"
qemu-img check top2.qcow2 >/dev/null || fail "top2: check"

# Bad options give a clear error, not an image.
for bad in compat=0.9 cluster_size=1000 cluster_size=4M refcount_bits=3 \
  refcount_bits=128 lazy_refcounts=maybe compression_type=lz4 \
  preallocation=some nosuchopt=1 compat=0.10,lazy_refcounts=on \
  compat=0.10,refcount_bits=8 extended_l2=on,cluster_size=4k \
  data_file_raw=on; do
  rm -f bad.qcow2
  if "$QIMG" create -o "$bad" bad.qcow2 1M >/dev/null 2>err.log; then
    fail "[$bad] accepted"
  fi
  [ -s err.log ] || fail "[$bad] no error message"
done
"$QIMG" create -b base.raw x.qcow2 2>/dev/null && fail "-b without -F"
"$QIMG" create x.qcow2 2>/dev/null && fail "no size"
"$QIMG" create -f raw -o cluster_size=4k x.raw 1M 2>/dev/null &&
  fail "raw with a qcow2 option"
"$QIMG" create -f raw -o preallocation=full full.raw 1M >/dev/null ||
  fail "raw preallocation=full"
[ "$(stat -c %b full.raw)" -ge 2048 ] || fail "raw full: not allocated"
"$QIMG" create x.qcow2 12Q 2>/dev/null && fail "bad size"
echo "ok: $n option sets"
