# Extended headers (NBD_OPT_EXTENDED_HEADERS): qnbd-extclient speaks
# 32-byte requests and replies to a 16 GiB sparse memory export.
. "$(dirname "$0")/../lib.sh"

EXTCLIENT=$QNBD_BUILD/tests/functional/qnbd-extclient
[ -x "$EXTCLIENT" ] || fail "qnbd-extclient not built at $EXTCLIENT"

require nbdsh
start_qnbd -f memory 16G
"$EXTCLIENT" "$SOCK" || fail "qnbd-extclient reported failures"
# The server still serves a compact-header client afterwards.
nbdsh -u "$URI" -c 'assert h.get_size() == 16 << 30' -c 'h.pread(512, 0)' \
  || fail "libnbd client after the extended-headers session"
stop_qnbd
