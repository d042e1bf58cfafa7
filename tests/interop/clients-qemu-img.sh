# qemu-img over nbd://127.0.0.1:PORT/NAME and nbd+unix:///NAME?socket=P:
# the export's `qemu-img map` agrees with the file's (start, length,
# data, zero), `qemu-img compare` finds them equal (and a different
# file unequal), and `qemu-img convert` works in both directions.
. "$(dirname "$0")/../lib.sh"
require qemu-img qemu-io

# map_of IMAGE: qemu-img map, adjacent like extents merged, offsets
# (host-side, which differ between a file and an NBD export) dropped.
map_of() {
  qemu-img map --output=json -f raw "$1" | /usr/bin/python3 -c '
import json, sys
out = []
for e in json.load(sys.stdin):
    k = (e["data"], e["zero"])
    if out and out[-1][2:] == list(k) and sum(out[-1][:2]) == e["start"]:
        out[-1][1] += e["length"]
    else:
        out.append([e["start"], e["length"], *k])
for o in out:
    print(*o)'
}

same_map() { # same_map URI WHEN
  map_of "$1" >"$TMP/export.map"
  map_of disk.img >"$TMP/file.map"
  diff -u "$TMP/file.map" "$TMP/export.map" ||
    fail "qemu-img map of $1 differs from the file's ($2)"
  # The file as created has both (later, whether zeroes punch holes is
  # the server's choice; only the agreement matters).
  [ "$2" != "as created" ] || {
    grep -q ' True False$' "$TMP/file.map" || fail "no data in the map ($2)"
    grep -q ' False True$' "$TMP/file.map" || fail "no hole in the map ($2)"
  }
}

fresh() {
  rm -f disk.img src.img out.img
  truncate -s 16M disk.img
  dd if=/dev/urandom of=disk.img bs=64k seek=16 count=8 conv=notrunc status=none
  dd if=/dev/urandom of=disk.img bs=1M seek=10 count=2 conv=notrunc status=none
  # Another image of the same size for convert into the export.
  truncate -s 16M src.img
  dd if=/dev/urandom of=src.img bs=1M seek=3 count=1 conv=notrunc status=none
  dd if=/dev/urandom of=src.img bs=4k seek=3000 count=5 conv=notrunc status=none
}

check() { # check URI
  same_map "$1" "as created"
  qemu-io -f raw -c 'write -P 0x33 2M 512k' -c 'write -z 1088k 64k' \
    -c 'discard 11M 512k' -c 'write -z -u 10M 64k' -c flush "$1" >/dev/null ||
    fail "qemu-io writes to $1"
  same_map "$1" "after writes"

  qemu-img compare -f raw -F raw "$1" disk.img ||
    fail "qemu-img compare $1 disk.img"
  local rc=0
  qemu-img compare -q -f raw -F raw "$1" src.img || rc=$?
  [ "$rc" = 1 ] || fail "qemu-img compare $1 src.img: exit $rc, expected 1"

  # export -> file
  qemu-img convert -f raw -O raw "$1" out.img
  cmp disk.img out.img || fail "qemu-img convert $1 out.img: content differs"

  # file -> export (-n: the export exists already)
  qemu-img convert -n -f raw -O raw src.img "$1"
  cmp src.img disk.img || fail "qemu-img convert src.img $1: file differs"
  qemu-img compare -f raw -F raw src.img "$1" ||
    fail "qemu-img compare src.img $1 after convert"
  same_map "$1" "after convert"
}

# QEMU's other spellings of the same export: the legacy nbd:HOST:PORT /
# nbd:unix:PATH form and --image-opts.
other_syntax() { # other_syntax LEGACY IMAGE-OPTS
  qemu-img compare -f raw -F raw "$1" disk.img || fail "qemu-img compare $1"
  [ "$(qemu-img info --output=json --image-opts "$2" |
    /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')" = 16777216 ] ||
    fail "qemu-img info --image-opts $2"
}

fresh
start_qnbd_tcp -x vol disk.img
check "nbd://127.0.0.1:$PORT/vol"
other_syntax "nbd:127.0.0.1:$PORT:exportname=vol" \
  "driver=raw,file.driver=nbd,file.server.type=inet,file.server.host=127.0.0.1,file.server.port=$PORT,file.export=vol"
stop_qnbd

fresh
start_qnbd -x vol disk.img
check "nbd+unix:///vol?socket=$SOCK"
other_syntax "nbd:unix:$SOCK:exportname=vol" \
  "driver=raw,file.driver=nbd,file.server.type=unix,file.server.path=$SOCK,file.export=vol"
stop_qnbd
