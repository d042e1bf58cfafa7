# A plugin served on stdin/stdout (-s): data flows, and
# nbdkit_stdio_safe() is false, so the sh plugin refuses an inline
# script on stdin (it would read the client's bytes) as under nbdkit.
. "$(dirname "$0")/../lib.sh"
. "$QNBD_TESTS/plugins/compare.sh"

"$NBD_PY" - "$QNBD" <<'PY' || fail "memory plugin over -s"
import sys, nbd
h = nbd.NBD()
h.connect_command([sys.argv[1], "-s", "--plugin", "memory", "size=1M"])
h.pwrite(b"stdio" * 100, 4096)
assert h.pread(500, 4096) == b"stdio" * 100
assert h.get_size() == 1024 * 1024
h.shutdown()
PY

"$NBD_PY" - "$QNBD" 2>err <<'PY' && fail "sh script=- accepted with -s"
import sys, nbd
h = nbd.NBD()
h.connect_command([sys.argv[1], "-s", "--plugin", "sh", "-"])
PY
grep -q "incompatible with -s" err || fail "sh -: $(cat err)"
