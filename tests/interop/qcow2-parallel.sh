# Many parallel readers of one qcow2 image through qnbd: nbdcopy with
# four connections and many requests in flight, with a metadata cache
# far smaller than the image's L2 tables (--cache-size 1: constant
# eviction), over a chain with compressed, zero, subcluster and backing
# ranges.  The bytes equal qemu-img convert's.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/qcow2-lib.bash"
require nbdcopy

# Base: 4 KiB clusters so that 256 MiB need 128 L2 tables; data is
# sprinkled everywhere, some of it compressed.
qemu-img create -q -f qcow2 -o cluster_size=4k base.qcow2 256M
cmds=()
for i in $(seq 0 127); do
  cmds+=(-c "write -P $((i % 250 + 1)) $((i * 2))M 12k")
  cmds+=(-c "write -c -P $((i % 200 + 3)) $((i * 2 + 1))M 4k")
done
qemu-io -f qcow2 "${cmds[@]}" base.qcow2 >/dev/null
qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=16k \
  -b base.qcow2 -F qcow2 top.qcow2 256M
cmds=()
for i in $(seq 0 63); do
  cmds+=(-c "write -P 0xee $((i * 4))M 1k" -c "write -z $((i * 4 + 1))M 8k")
done
qemu-io -f qcow2 "${cmds[@]}" top.qcow2 >/dev/null

qemu-img convert -O raw top.qcow2 ref.raw
start_qnbd -r --cache-size 1 --threads 8 top.qcow2
for round in 1 2; do
  nbdcopy -C 4 -R 64 --request-size=65536 "$URI" got.raw
  cmp ref.raw got.raw || fail "parallel read $round differs"
  rm -f got.raw
done
stop_qnbd
