# qcow2 corpus: refcount widths 1..64 bits, lazy refcounts (clean, and
# dirty after a crash), and every preallocation mode.  Bytes, maps and
# info as qemu-img reports them, directly and through qnbd.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/qcow2-lib.bash"

imgs=()
for rb in 1 2 4 8 16 32 64; do
  f=rb-$rb.qcow2
  # Metadata preallocation makes the map depend on the refcounts (QEMU's
  # preallocation heuristic), so every width is really read.
  qemu-img create -q -f qcow2 \
    -o refcount_bits=$rb,cluster_size=4k,preallocation=metadata "$f" 2M
  write_pattern "$f"
  imgs+=("$f")
done
qemu-img create -q -f qcow2 -o lazy_refcounts=on lazy.qcow2 2M
write_pattern lazy.qcow2
imgs+=(lazy.qcow2)
# A dirty image: qemu-io killed before it could close the image cleanly.
qemu-img create -q -f qcow2 -o lazy_refcounts=on dirty.qcow2 2M
qemu-io -f qcow2 -c "write -P 0x55 64k 64k" -c "sigraise 9" dirty.qcow2 \
  >/dev/null 2>&1 || true
qemu-img info --output=json dirty.qcow2 | grep -q '"dirty-flag": true' ||
  fail "could not make a dirty image"
imgs+=(dirty.qcow2)
for p in off metadata falloc full; do
  f=prealloc-$p.qcow2
  qemu-img create -q -f qcow2 -o preallocation=$p "$f" 3M
  qemu-io -f qcow2 -c "write -P 0x66 1M 64k" "$f" >/dev/null
  imgs+=("$f")
done
check_all "${imgs[@]}"
echo "checked $NIMAGES images"
