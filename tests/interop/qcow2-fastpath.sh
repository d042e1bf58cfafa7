# qcow2 reads served on the event loop (pread_nowait: cached metadata,
# data in the page cache via RWF_NOWAIT) return the same bytes as the
# worker path: with one worker thread and 64 requests in flight, most
# small reads take the fast path.  Every 4 KiB block of a qcow2 over a
# raw backing file (allocated, zero, unallocated ranges) and of a qcow2
# over a compressed qcow2 is read twice in random order and compared
# with qemu-img convert's output.
. "$(dirname "$0")/../lib.sh"
require qemu-img qemu-io /usr/bin/python3
/usr/bin/python3 -c 'import nbd' 2>/dev/null || skip "python3-libnbd"

qemu-img create -q -f raw base.raw 8M
qemu-io -f raw -c "write -P 0x11 0 3M" -c "write -P 0x22 5M 2M" base.raw >/dev/null
qemu-img create -q -f qcow2 -b base.raw -F raw top.qcow2 8M
qemu-io -f qcow2 -c "write -P 0x33 1M 1M" -c "write -z 2M 512k" \
  -c "write -z -u 5M 256k" -c "write -P 0x44 7M 4k" top.qcow2 >/dev/null
qemu-img convert -O raw top.qcow2 top.ref

qemu-img convert -c -O qcow2 base.raw comp.qcow2
qemu-img create -q -f qcow2 -b comp.qcow2 -F qcow2 ov.qcow2 8M
qemu-io -f qcow2 -c "write -P 0x55 64k 64k" ov.qcow2 >/dev/null
qemu-img convert -O raw ov.qcow2 ov.ref

cat >rd.py <<'PY'
import nbd, random, sys
uri, ref = sys.argv[1], sys.argv[2]
data = open(ref, "rb").read()
h = nbd.NBD()
h.connect_uri(uri)
assert h.get_size() == len(data)
offs = list(range(0, len(data), 4096)) * 2
random.Random(7).shuffle(offs)
bad = []
def done(off, buf, err):
    if err.value or bytes(buf.to_bytearray()) != data[off:off + 4096]:
        bad.append(off)
    return 1
i = 0
while i < len(offs) or h.aio_in_flight() > 0:
    while i < len(offs) and h.aio_in_flight() < 64:
        off = offs[i]
        b = nbd.Buffer(4096)
        h.aio_pread(b, off, completion=lambda err, off=off, b=b: done(off, b, err))
        i += 1
    h.poll(-1)
print("%d reads, %d wrong" % (len(offs), len(bad)))
sys.exit(1 if bad else 0)
PY

for img in top ov; do
  start_qnbd --threads 1 "$img.qcow2"
  /usr/bin/python3 rd.py "$URI" "$img.ref" || fail "$img.qcow2: reads differ"
  stop_qnbd
done
