# Debian's generated-content plugins (pattern, null, zero, random,
# sparse-random) serve the same bytes, flags and extents under qnbd as
# under nbdkit; pattern's bytes are the big-endian offsets.
. "$(dirname "$0")/../lib.sh"
. "$QNBD_TESTS/plugins/compare.sh"
require nbdkit nbdinfo nbdcopy qemu-img

check() {
  serve_both "$@"
  same_info "$*"
  same_bytes "$*"
  same_map "$*"
  stop_qnbd
  stop_nbdkit
}
check pattern size=1M
check null size=1M
check zero
check random size=1M seed=42
check sparse-random size=16M seed=7 percent=20

# pattern: the 8 bytes at offset 4096 are 4096 big-endian.
start_qnbd --plugin pattern size=1M
got=$(nbdsh -u "$URI" -c 'print(h.pread(8, 4096).hex())')
[ "$got" = 0000000000001000 ] || fail "pattern at 4096: $got"
stop_qnbd

# sparse-random checks that what is written equals what it generates:
# copying the disk onto itself through qnbd must succeed.
start_qnbd --plugin sparse-random size=64M seed=3
nbdcopy -- "$URI" "$URI" || fail "sparse-random: nbdcopy onto itself"
