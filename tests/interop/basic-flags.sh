# nbdinfo --can / --is / --size on a raw file: a writable export offers
# flush, FUA, trim, zero, fast zero, multi-conn, cache, df (structured
# replies) and base:allocation (extents); -r makes it read-only.  nbdinfo
# exits 0 for true and 2 for false.  TCP and Unix.
. "$(dirname "$0")/../lib.sh"
require nbdinfo

SIZE=$((10 * 1048576 + 512))
truncate -s "$SIZE" disk.img

# can URI EXPECTED(0|2) --can|--is FLAG
can() {
  local rc=0
  nbdinfo "$3" "$4" "$1" || rc=$?
  [ "$rc" = "$2" ] || fail "nbdinfo $3 $4 $1: exit $rc, expected $2"
}

check_rw() {
  for f in connect read write flush fua trim zero fast-zero multi-conn \
    cache df structured-reply; do
    can "$1" 0 --can "$f"
  done
  can "$1" 2 --is read-only
  got=$(nbdinfo --size "$1")
  [ "$got" = "$SIZE" ] || fail "nbdinfo --size $1: $got, expected $SIZE"
  nbdinfo --json "$1" | /usr/bin/python3 -c '
import json, sys
e = json.load(sys.stdin)["exports"][0]
sys.exit("base:allocation" not in e.get("contexts", []))' ||
    fail "$1 offers no base:allocation context (extents)"
}

check_ro() {
  can "$1" 0 --is read-only
  can "$1" 2 --can write
  can "$1" 0 --can read
  can "$1" 0 --can flush
  got=$(nbdinfo --size "$1")
  [ "$got" = "$SIZE" ] || fail "nbdinfo --size $1 (-r): $got, expected $SIZE"
}

start_qnbd_tcp disk.img
check_rw "$URI"
stop_qnbd
start_qnbd_tcp -r disk.img
check_ro "$URI"
stop_qnbd

start_qnbd disk.img
check_rw "$URI"
stop_qnbd
start_qnbd -r disk.img
check_ro "$URI"
stop_qnbd
