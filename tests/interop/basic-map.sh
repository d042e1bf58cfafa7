# nbdinfo --map on a sparse raw file: the holes and data qnbd reports
# (base:allocation) are exactly the file's layout, as written with
# truncate + dd and as SEEK_DATA/SEEK_HOLE see it.  TCP and Unix.
. "$(dirname "$0")/../lib.sh"
require nbdinfo

M=1048576
truncate -s 8M disk.img
dd if=/dev/urandom of=disk.img bs=1M seek=1 count=1 conv=notrunc status=none
dd if=/dev/urandom of=disk.img bs=512K seek=8 count=1 conv=notrunc status=none
dd if=/dev/urandom of=disk.img bs=1M seek=7 count=1 conv=notrunc status=none

# The layout we wrote, as "offset length type" lines (0 data, 3 hole,zero).
expected="0 $M 3
$M $M 0
$((2 * M)) $((2 * M)) 3
$((4 * M)) $((M / 2)) 0
$((9 * M / 2)) $((5 * M / 2)) 3
$((7 * M)) $M 0"

# The file system's view of the same file.
fs=$(/usr/bin/python3 - disk.img <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
end = os.fstat(fd).st_size
off = 0
while off < end:
    try:
        data = os.lseek(fd, off, os.SEEK_DATA)
    except OSError:
        data = end
    if data > off:
        print(off, data - off, 3)
    if data >= end:
        break
    hole = os.lseek(fd, data, os.SEEK_HOLE)
    print(data, hole - data, 0)
    off = hole
PY
)
# (A property of $TMPDIR's file system, not a missing tool: plain skip.)
[ "$fs" = "$expected" ] || { echo "SKIP: this file system does not keep the holes:
$fs" >&2; exit 77; }

# merged_map URI: nbdinfo --map with adjacent extents of one type merged.
merged_map() {
  nbdinfo --map --json "$1" | /usr/bin/python3 -c '
import json, sys
out = []
for e in json.load(sys.stdin):
    if out and out[-1][2] == e["type"] and out[-1][0] + out[-1][1] == e["offset"]:
        out[-1][1] += e["length"]
    else:
        out.append([e["offset"], e["length"], e["type"]])
for o in out:
    print(*o)'
}

check() {
  got=$(merged_map "$1")
  [ "$got" = "$expected" ] || fail "nbdinfo --map $1:
$got
expected:
$expected"
  # The plain output names the types too.
  nbdinfo --map "$1" | grep -q "hole,zero" || fail "no 'hole,zero' in --map"
  nbdinfo --map "$1" | grep -qw "data" || fail "no 'data' in --map"
}

start_qnbd_tcp disk.img
check "$URI"
stop_qnbd

start_qnbd disk.img
check "$URI"
stop_qnbd
