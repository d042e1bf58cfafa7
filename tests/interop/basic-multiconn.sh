# Multi-conn (NBD_FLAG_CAN_MULTI_CONN, advertised for raw files): a write
# acknowledged and flushed on one connection is visible on every other;
# eight clients at once each see only their own region change.  TCP and
# Unix.
. "$(dirname "$0")/../lib.sh"
require nbdsh # python3-libnbd

truncate -s 8M disk.img

cat >multi.py <<'PY'
import nbd, sys, threading
uri = sys.argv[1]
hs = [nbd.NBD() for _ in range(4)]
for h in hs:
    h.connect_uri(uri)
    assert h.can_multi_conn()
# Write on one, flush on another (the spec: a flush on any connection
# covers writes completed on all of them), read on the rest.
for i, h in enumerate(hs):
    pat = bytes([0x40 + i]) * 65536
    h.pwrite(pat, i * 65536)
    hs[(i + 1) % 4].flush()
    for j, g in enumerate(hs):
        assert g.pread(65536, i * 65536) == pat, "conn %d does not see conn %d's write" % (j, i)
# FUA writes are visible everywhere at once too.
hs[0].pwrite(b"\x99" * 4096, 1 << 20, nbd.CMD_FLAG_FUA)
assert all(h.pread(4096, 1 << 20) == b"\x99" * 4096 for h in hs)
# Zero and trim through one connection, seen through another.
hs[2].zero(65536, 0)
assert hs[3].pread(65536, 0) == bytes(65536)
for h in hs:
    h.shutdown()

# Eight concurrent clients, each rewriting its own 256 KiB region.
errors = []
def client(n):
    try:
        h = nbd.NBD()
        h.connect_uri(uri)
        base = (2 << 20) + n * (256 << 10)
        for r in range(20):
            buf = bytes([n * 16 + r % 16]) * (256 << 10)
            h.pwrite(buf, base)
            if h.pread(256 << 10, base) != buf:
                errors.append("client %d round %d read back wrong" % (n, r))
        h.flush()
        h.shutdown()
    except Exception as e:
        errors.append("client %d: %s" % (n, e))
ts = [threading.Thread(target=client, args=(n,)) for n in range(8)]
for t in ts: t.start()
for t in ts: t.join()
assert not errors, errors
PY

check() { # check URI
  /usr/bin/python3 multi.py "$1" || fail "multi-conn on $1"
  /usr/bin/python3 - <<'PY' || fail "the file does not hold what the clients wrote ($1)"
d = open("disk.img", "rb").read()
assert d[0:65536] == bytes(65536)
for i in range(1, 4):
    assert d[i * 65536:(i + 1) * 65536] == bytes([0x40 + i]) * 65536, i
assert d[1 << 20:(1 << 20) + 4096] == b"\x99" * 4096
for n in range(8):
    base = (2 << 20) + n * (256 << 10)
    assert d[base:base + (256 << 10)] == bytes([n * 16 + 19 % 16]) * (256 << 10), n
PY
}

start_qnbd_tcp disk.img
check "$URI/"
stop_qnbd

truncate -s 0 disk.img
truncate -s 8M disk.img
start_qnbd disk.img
check "$URI"
stop_qnbd
