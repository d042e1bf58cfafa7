# nbdkit's nbd plugin (libnbd inside the plugin) proxying through one
# qnbd to another qnbd: writes through the proxy land in the backend,
# extents and flags pass through, and export listing is forwarded.
. "$(dirname "$0")/../lib.sh"
. "$QNBD_TESTS/plugins/compare.sh"
require nbdsh qemu-img qemu-io

BACK=$TMP/back.sock
"$QNBD" -U "$BACK" -f memory 4M >>"$TMP/back.log" 2>&1 &
_pids+=("$!")
wait_for_socket "$BACK"
BACK_URI="nbd+unix:///?socket=$BACK"

start_qnbd --plugin nbd socket="$BACK"
qemu-io -f raw -c 'write -P 0x5a 1M 64k' -c 'write -z 2M 4k' -c flush \
  "$URI" >/dev/null
qemu-io -f raw -c 'read -P 0x5a 1M 64k' "$BACK_URI" >/dev/null ||
  fail "nbd: data written through the proxy is not in the backend"
qemu-img map --output=json -f raw "$BACK_URI" >back.map
qemu-img map --output=json -f raw "$URI" >proxy.map
diff -u back.map proxy.map || fail "nbd: extents differ through the proxy"
size=$(nbdsh -u "$URI" -c 'print(h.get_size())')
[ "$size" = 4194304 ] || fail "nbd: size $size"
