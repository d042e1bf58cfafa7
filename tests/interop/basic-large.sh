# Offsets past 4 GiB and the largest requests: on a sparse 6 GiB file
# (plus an odd tail), writes straddling 4 GiB and at unaligned offsets
# land at the right place in the file, 32 MiB requests (the advertised
# maximum) go through in one piece, and the size and map are right.
. "$(dirname "$0")/../lib.sh"
require qemu-io nbdinfo nbdsh # nbdsh: python3-libnbd

G=$((1 << 30))
SIZE=$((6 * G + 4096 + 7))
truncate -s "$SIZE" disk.img

check() { # check URI
  [ "$(nbdinfo --size "$1")" = "$SIZE" ] || fail "nbdinfo --size $1"
  qemu-io -f raw -c "write -P 0x41 $((4 * G - 512)) 1024" \
    -c "write -P 0x42 $((5 * G + 123)) 777" \
    -c "write -P 0x43 $((SIZE - 7)) 7" \
    -c "read -P 0x41 $((4 * G - 512)) 1024" \
    -c "read -P 0x42 $((5 * G + 123)) 777" \
    -c "read -P 0x43 $((SIZE - 7)) 7" "$1" >"$TMP/io.out" ||
    fail "qemu-io past 4 GiB on $1: $(cat "$TMP/io.out")"
  /usr/bin/python3 - "$SIZE" <<'PY' || fail "writes past 4 GiB misplaced ($1)"
import os, sys
G, size = 1 << 30, int(sys.argv[1])
fd = os.open("disk.img", os.O_RDONLY)
def at(off, n): return os.pread(fd, n, off)
assert os.fstat(fd).st_size == size
assert at(4 * G - 1024, 512) == bytes(512)
assert at(4 * G - 512, 1024) == b"\x41" * 1024
assert at(4 * G + 512, 512) == bytes(512)
assert at(5 * G + 122, 779) == b"\0" + b"\x42" * 777 + b"\0"
assert at(size - 8, 8) == b"\0" + b"\x43" * 7
# Nothing leaked to the offsets a 32-bit truncation would give.
assert at(0, 1024) == bytes(1024) and at(G + 123, 777) == bytes(777)
PY

  # One 32 MiB request each way, at an offset above 4 GiB.
  nbdsh -u "$1" -c '
G = 1 << 30
# 32 MiB is also the maximum a client may assume when none is advertised.
mx = h.get_block_size(nbd.SIZE_MAXIMUM) or 32 << 20
assert mx >= 32 << 20, mx
mx = 32 << 20
buf = bytes(range(256)) * (mx // 256)
h.pwrite(buf, 4 * G + 4096)
assert h.pread(mx, 4 * G + 4096) == buf
h.zero(mx, 4 * G + 4096)
assert h.pread(mx, 4 * G + 4096) == bytes(mx)
h.trim(mx, 4 * G + 4096)
' || fail "32 MiB requests on $1"

  # The map: data only around the writes, holes elsewhere.
  nbdinfo --map --totals "$1" >"$TMP/totals" || fail "nbdinfo --map --totals $1"
  /usr/bin/python3 - "$TMP/totals" "$SIZE" <<'PY' || fail "map of $1: $(cat "$TMP/totals")"
import sys
total, data = 0, 0
for line in open(sys.argv[1]):
    f = line.split()
    total += int(f[0])
    if f[2] == "0":
        data += int(f[0])
assert total == int(sys.argv[2]), total
assert 0 < data <= (1 << 20), data
PY
}

start_qnbd_tcp disk.img
check "$URI/"
stop_qnbd

truncate -s 0 disk.img
truncate -s "$SIZE" disk.img
start_qnbd disk.img
check "$URI"
stop_qnbd
