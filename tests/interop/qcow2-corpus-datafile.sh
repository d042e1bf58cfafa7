# qcow2 corpus: external data files (raw and not, with extended L2) and
# zero clusters of every kind (plain, allocated, unmapped, discarded).  Bytes, maps and info as qemu-img
# reports them, directly and through qnbd.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/qcow2-lib.bash"

imgs=()
# External data files.
for raw in off on; do
  f=df-$raw.qcow2
  qemu-img create -q -f qcow2 -o data_file=df-$raw.data,data_file_raw=$raw \
    "$f" 4M
  write_pattern "$f"
  imgs+=("$f")
done
qemu-img create -q -f qcow2 -o data_file=df-x.data,extended_l2=on df-x.qcow2 4M
qemu-io -f qcow2 -c "write -P 0x12 4k 2k" -c "write -z 64k 64k" df-x.qcow2 \
  >/dev/null
imgs+=(df-x.qcow2)
# Zero clusters: plain, over allocated data (kept and unmapped), discard.
for compat in 0.10 1.1; do
  f=zero-$compat.qcow2
  qemu-img create -q -f qcow2 -o compat=$compat "$f" 4M
  qemu-io -f qcow2 -c "write -P 0x55 0 1M" -c "write -z 64k 64k" \
    -c "write -z -u 256k 128k" -c "discard 512k 64k" -c "write -z 2M 1M" \
    "$f" >/dev/null
  imgs+=("$f")
done
check_all "${imgs[@]}"
echo "checked $NIMAGES images"
