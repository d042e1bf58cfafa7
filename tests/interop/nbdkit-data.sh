# nbdkit's data plugin: the example "@32768 1 @65536 1" gives the same
# bytes and the same qemu-img map as under nbdkit, and so do a pattern
# expression and an explicit size.
. "$(dirname "$0")/../lib.sh"
. "$QNBD_TESTS/plugins/compare.sh"
require nbdkit nbdinfo nbdcopy qemu-img

serve_both data "@32768 1 @65536 1"
same_info data
same_bytes data
same_map data
stop_qnbd
stop_nbdkit

serve_both data '( 0x55 0xAA )*1000 @1048576 1 2 3' size=2M
same_bytes data-pattern
same_map data-pattern
