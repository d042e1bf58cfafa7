# nbdcopy from a sparse file into the export and back out, with one and
# with four connections, and between two exports of one server: the
# checksums match the source every time.  TCP and Unix.
. "$(dirname "$0")/../lib.sh"
require nbdcopy sha256sum

sum() { sha256sum <"$1" | cut -d' ' -f1; }

# A sparse source: scattered random data, holes, and a zero-filled
# (allocated) stretch.
truncate -s 16M src.img
for seek in 0 7 8 9 100 200 255; do
  dd if=/dev/urandom of=src.img bs=64k seek="$seek" count=1 conv=notrunc status=none
done
dd if=/dev/zero of=src.img bs=1M seek=5 count=2 conv=notrunc status=none
dd if=/dev/urandom of=src.img bs=1M seek=12 count=3 conv=notrunc status=none
want=$(sum src.img)

fresh() { # the export starts full of garbage so zeroes must be written
  rm -f disk.img other.img out.img
  head -c 16M /dev/urandom >disk.img
  truncate -s 16M other.img
}

check() { # check BASE SUFFIX (URIs are BASE/disk SUFFIX and BASE/other SUFFIX)
  local disk=$1/disk$2 other=$1/other$2
  for conns in 1 4; do
    nbdcopy --connections="$conns" src.img "$disk" ||
      fail "nbdcopy -C $conns src.img $disk"
    [ "$(sum disk.img)" = "$want" ] || fail "file -> $disk ($conns conns): checksum"
    # The source's holes (and its zero-filled stretch) became holes:
    # nbdcopy sent zero requests that may punch, and a raw file does.
    alloc=$(($(stat -c %b disk.img) * $(stat -c %B disk.img)))
    [ "$alloc" -lt $((6 << 20)) ] ||
      fail "file -> $disk ($conns conns): $alloc bytes allocated, the input has 3.5 MiB of data"
    rm -f out.img
    nbdcopy --connections="$conns" "$disk" out.img ||
      fail "nbdcopy -C $conns $disk out.img"
    [ "$(sum out.img)" = "$want" ] || fail "$disk -> file ($conns conns): checksum"
    nbdcopy --connections="$conns" --flush "$disk" "$other" ||
      fail "nbdcopy $disk $other"
    [ "$(sum other.img)" = "$want" ] || fail "$disk -> $other: checksum"
    truncate -s 0 other.img
    truncate -s 16M other.img
    head -c 16M /dev/urandom >disk.img
  done
  # Through a pipe (stream input) as well.
  nbdcopy - "$disk" <src.img || fail "nbdcopy - $disk"
  [ "$(sum disk.img)" = "$want" ] || fail "stdin -> $disk: checksum"
  [ "$(nbdcopy "$disk" - | sha256sum | cut -d' ' -f1)" = "$want" ] ||
    fail "$disk -> stdout: checksum"
}

fresh
start_qnbd_tcp -x disk --export other=other.img disk.img
check "nbd://127.0.0.1:$PORT" ""
stop_qnbd

fresh
start_qnbd -x disk --export other=other.img disk.img
check "nbd+unix://" "?socket=$SOCK"
stop_qnbd
