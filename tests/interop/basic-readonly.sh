# A read-only export (-r): qemu-io, qemu-img and nbdcopy refuse to write
# (the export says read-only), writes, zeroes and trims sent anyway (libnbd
# with its client-side checks off) fail with EPERM, reads work, and the
# file is unchanged.  TCP and Unix.
. "$(dirname "$0")/../lib.sh"
require qemu-io qemu-img nbdcopy nbdsh # nbdsh: python3-libnbd

truncate -s 4M disk.img
dd if=/dev/urandom of=disk.img bs=64k seek=1 count=4 conv=notrunc status=none
cp disk.img orig.img
truncate -s 4M zero.img

check() { # check URI
  local rc
  for c in 'write -P 0x11 0 64k' 'write -z 64k 64k' 'discard 128k 64k'; do
    rc=0
    qemu-io -f raw -c "$c" "$1" >"$TMP/io.out" 2>&1 || rc=$?
    [ "$rc" != 0 ] || fail "qemu-io '$c' on read-only $1 succeeded"
    grep -qi -e denied -e 'read-only' -e 'not permitted' "$TMP/io.out" ||
      fail "qemu-io '$c' on $1: no error reported: $(cat "$TMP/io.out")"
  done
  qemu-io -r -f raw -c 'read -P 0 0 64k' "$1" >/dev/null ||
    fail "qemu-io read of $1"
  rc=0
  qemu-img convert -n -f raw -O raw zero.img "$1" 2>/dev/null || rc=$?
  [ "$rc" != 0 ] || fail "qemu-img convert into read-only $1 succeeded"
  rc=0
  nbdcopy zero.img "$1" 2>/dev/null || rc=$?
  [ "$rc" != 0 ] || fail "nbdcopy into read-only $1 succeeded"

  # The server itself refuses, not only the clients.
  /usr/bin/python3 - "$1" <<'PY' || fail "server-side refusal on $1"
import errno, nbd, sys
h = nbd.NBD()
h.set_strict_mode(h.get_strict_mode() & ~nbd.STRICT_COMMANDS)
h.connect_uri(sys.argv[1])
assert h.is_read_only()
for name, op in (("write", lambda: h.pwrite(b"\x11" * 4096, 65536)),
                 ("zero", lambda: h.zero(65536, 65536)),
                 ("trim", lambda: h.trim(65536, 65536))):
    try:
        op()
        sys.exit("%s on a read-only export succeeded" % name)
    except nbd.Error as e:
        assert e.errno in ("EPERM", errno.EPERM), "%s: %s" % (name, e.string)
assert h.pread(4096, 65536) == open("orig.img", "rb").read()[65536:69632]
h.flush()
h.shutdown()
PY
  cmp orig.img disk.img || fail "read-only $1: the file changed"
}

start_qnbd_tcp -r -x ro disk.img
check "nbd://127.0.0.1:$PORT/ro"
stop_qnbd

start_qnbd -r -x ro disk.img
check "nbd+unix:///ro?socket=$SOCK"
stop_qnbd
