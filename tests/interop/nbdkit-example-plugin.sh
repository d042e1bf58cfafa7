# plugins/example (written only against nbdkit's headers) behaves the
# same under qnbd as under real nbdkit: flags, bytes and extents after
# the same writes, zeroes and trims, with size given as the magic key.
. "$(dirname "$0")/../lib.sh"
. "$QNBD_TESTS/plugins/compare.sh"
require nbdkit nbdinfo nbdcopy qemu-img qemu-io

so=$QNBD_BUILD/plugins/example/nbdkit-example-plugin.so
[ -e "$so" ] || fail "$so was not built"
serve_both "$so" 4M
same_info example
for uri in "$NK_URI" "$URI"; do
  qemu-io -f raw -c 'write -P 0x31 100k 200k' -c 'write -z 128k 64k' \
    -c 'write -P 0x32 3M 1M' -c 'discard 3M 128k' -c 'write -z -u 3200k 1k' \
    -c 'flush' "$uri" >/dev/null
done
same_bytes example
same_map example
qemu-io -f raw -c 'read -P 0x31 100k 28k' -c 'read -P 0 128k 64k' "$URI" \
  >/dev/null || fail "example: data read back wrong"
