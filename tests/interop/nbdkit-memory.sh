# nbdkit's memory plugin under qnbd and under nbdkit: same flags, and
# after the same writes, zeroes and trims the same bytes and extents.
. "$(dirname "$0")/../lib.sh"
. "$QNBD_TESTS/plugins/compare.sh"
require nbdkit nbdinfo nbdcopy qemu-img qemu-io

serve_both memory size=4M
same_info memory
for uri in "$NK_URI" "$URI"; do
  qemu-io -f raw -c 'write -P 0x11 0 64k' -c 'write -P 0x22 1M 4k' \
    -c 'write -z 1M 512' -c 'write -P 0x33 3M 1M' -c 'discard 3M 512k' \
    -c 'write -z -u 0 32k' "$uri" >/dev/null
done
same_bytes memory
same_map memory
qemu-io -f raw -c 'read -P 0x33 3584k 512k' -c 'read -P 0 3M 512k' \
  "$URI" >/dev/null || fail "memory: data read back wrong"
