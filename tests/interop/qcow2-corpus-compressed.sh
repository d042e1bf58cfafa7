# qcow2 corpus: extended L2 entries (subclusters) and compressed clusters
# (zlib and zstd, partly overwritten).  Bytes, maps and info as qemu-img
# reports them, directly and through qnbd.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/qcow2-lib.bash"

imgs=()
# Extended L2: writes smaller than a subcluster, zeroes, discards.
for cs in 16k 64k 2M; do
  f=extl2-$cs.qcow2
  qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=$cs "$f" 4M
  qemu-io -f qcow2 -c "write -P 0x11 0 1k" -c "write -P 0x22 70k 3k" \
    -c "write -z 200k 8k" -c "write -P 0x33 1M 256k" \
    -c "discard 1088k 64k" -c "write -z -u 3M 512k" "$f" >/dev/null
  imgs+=("$f")
done
# Compressed clusters, then some of them rewritten or zeroed.
/usr/bin/python3 -c '
with open("src.raw", "wb") as f:
    for i in range(64):
        f.write(((b"cluster %06d " % i) * 4096).ljust(65536, b"\0"))
    f.truncate(6 << 20)'
dd if=/dev/urandom of=src.raw bs=64k seek=70 count=2 conv=notrunc status=none
for ct in zlib zstd; do
  for cs in 4k 64k; do
    f=comp-$ct-$cs.qcow2
    qemu-img convert -c -O qcow2 -o compression_type=$ct,cluster_size=$cs \
      src.raw "$f"
    qemu-io -f qcow2 -c "write -P 0x44 128k 4k" -c "write -z 256k 64k" \
      "$f" >/dev/null
    imgs+=("$f")
  done
done
qemu-img convert -c -O qcow2 -o compression_type=zstd,extended_l2=on \
  src.raw comp-extl2.qcow2
qemu-io -f qcow2 -c "write -P 0x45 8k 2k" comp-extl2.qcow2 >/dev/null
imgs+=(comp-extl2.qcow2)
for img in "${imgs[@]}"; do check_engine "$img"; done
grep -q '"data": true}' comp-zstd-64k.qcow2.map ||
  fail "the corpus holds no compressed cluster"
verify_nbd "${imgs[@]}"
echo "checked $NIMAGES images"
