# The sparse in-memory disk (-f memory SIZE) through real clients: it
# starts all hole, qemu-io writes read back and show up as data in
# nbdinfo --map, discards and zero writes that may unmap give the memory
# back (holes again), nbdcopy round-trips, and a restart starts empty.
# TCP and Unix.
. "$(dirname "$0")/../lib.sh"
require qemu-io nbdinfo nbdcopy sha256sum

# data_bytes URI: how many bytes the map calls data.
data_bytes() {
  nbdinfo --map --json "$1" | /usr/bin/python3 -c '
import json, sys
print(sum(e["length"] for e in json.load(sys.stdin) if not e["type"] & 1))'
}

check() { # check URI
  [ "$(nbdinfo --size "$1")" = 33554432 ] || fail "nbdinfo --size $1"
  [ "$(data_bytes "$1")" = 0 ] || fail "a fresh memory disk has data: $(nbdinfo --map "$1")"
  qemu-io -f raw -c 'read -P 0 0 32M' -c 'write -P 0x61 1M 1M' \
    -c 'write -P 0x62 10M 4k' -c 'read -P 0x61 1M 1M' -c 'read -P 0x62 10M 4k' \
    -c 'read -P 0 2M 8M' "$1" >/dev/null || fail "qemu-io on $1"
  local d
  d=$(data_bytes "$1")
  { [ "$d" -ge $((1048576 + 4096)) ] && [ "$d" -le $((1048576 + 262144)) ]; } ||
    fail "after 1 MiB + 4 KiB of writes the map has $d bytes of data"
  qemu-io -f raw -c 'discard 1M 1M' -c 'write -z -u 10M 1M' \
    -c 'read -P 0 0 32M' "$1" >/dev/null || fail "qemu-io discard on $1"
  [ "$(data_bytes "$1")" = 0 ] || fail "discarded memory still data: $(nbdinfo --map "$1")"
  head -c 32M /dev/urandom >src.img
  nbdcopy --connections=4 src.img "$1" || fail "nbdcopy src.img $1"
  [ "$(nbdcopy "$1" - | sha256sum)" = "$(sha256sum <src.img)" ] ||
    fail "$1: nbdcopy round trip differs"
}

start_qnbd_tcp -f memory 32M
check "$URI/"
stop_qnbd
start_qnbd -f memory 32M
check "$URI"
stop_qnbd
# A new process: nothing kept.
start_qnbd -f memory 32M
[ "$(data_bytes "$URI")" = 0 ] || fail "a restarted memory disk has data"
stop_qnbd
