# Corrupt and hostile qcow2 images, table side: each L1, L2 (standard,
# compressed, extended), refcount, snapshot and bitmap table entry
# damaged in turn; the affected request fails with EIO and a log line
# naming the offset, never a crash (run it in the ASan+UBSan preset).
# Then a corrupt L2 entry served by qnbd: EIO for that range only.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/qcow2-lib.bash"
require nbdsh

make_victims
corrupt_cases tables || fail "a corrupt table was not handled cleanly"

# Served: a corrupt L2 entry fails only its own range, with EIO.
cp base.qcow2 bad.qcow2
/usr/bin/python3 - bad.qcow2 <<'PY'
import struct, sys
with open(sys.argv[1], "r+b") as f:
    h = f.read(512)
    l1 = struct.unpack_from(">Q", h, 40)[0]
    f.seek(l1)
    l2 = struct.unpack(">Q", f.read(8))[0] & 0x00FFFFFFFFFFFE00
    f.seek(l2 + 16 * 8)
    e = struct.unpack(">Q", f.read(8))[0]
    f.seek(l2 + 16 * 8)
    f.write(struct.pack(">Q", e | (1 << 58)))
PY
start_qnbd -r bad.qcow2
nbdsh -u "$URI" -c '
import errno
try:
    h.pread(4096, 1 << 20)
    raise SystemExit("corrupt range read without error")
except nbd.Error as e:
    assert e.errno == errno.EIO or "EIO" in str(e), e
assert h.pread(4096, 3 << 20) == b"\x22" * 4096
'
grep -q "corrupt L2 entry at offset 0x" "$TMP/qnbd.log" ||
  fail "the log does not name the corrupt entry"
stop_qnbd
