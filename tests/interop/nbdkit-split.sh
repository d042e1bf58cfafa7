# API v1 plugins: split (three files as one disk; v1 pwrite/trim/zero
# with may_trim) and partitioning (files as partitions) under qnbd give
# the same bytes and extents as under nbdkit, and writes land in the
# right file.
. "$(dirname "$0")/../lib.sh"
. "$QNBD_TESTS/plugins/compare.sh"
require nbdkit nbdcopy qemu-img qemu-io

for f in a b c; do
  dd if=/dev/urandom of=$f.img bs=64k count=4 status=none
  cp $f.img nk-$f.img
done
start_nbdkit split nk-a.img nk-b.img nk-c.img
start_qnbd --plugin split a.img b.img c.img
same_bytes split
same_map split
for u in "$NK_URI" "$URI"; do
  qemu-io -f raw -c 'write -P 0x7e 250k 12k' -c 'write -z 500k 40k' "$u" \
    >/dev/null
done
for f in a b c; do cmp $f.img nk-$f.img || fail "split: $f.img differs"; done
stop_qnbd
stop_nbdkit

# partitioning: MBR so that no random GUIDs differ.
truncate -s 1M p1.img
dd if=/dev/urandom of=p2.img bs=64k count=8 status=none
serve_both partitioning partition-type=mbr p1.img p2.img
same_bytes partitioning
same_map partitioning
