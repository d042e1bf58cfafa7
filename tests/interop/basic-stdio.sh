# qnbd -s serves one connection on stdin/stdout: through libnbd's
# connect_command (nbdsh) and on a socketpair handed over by hand, where
# qnbd must also exit 0 once the client hangs up.  -s -r refuses writes.
. "$(dirname "$0")/../lib.sh"
require nbdsh

truncate -s 4M disk.img

nbdsh -c "h.connect_command(['$QNBD', '-s', 'disk.img'])" -c '
assert h.get_size() == 4 << 20
assert h.can_flush() and h.can_trim() and h.can_zero()
h.pwrite(b"stdio!" * 1000, 65536)
h.flush()
assert h.pread(6000, 65536) == b"stdio!" * 1000
h.zero(4096, 65536 + 4096)
assert h.pread(4096, 65536 + 4096) == bytes(4096)
h.shutdown()' || fail "nbdsh connect_command qnbd -s"
/usr/bin/python3 - <<'PY' || fail "the writes through qnbd -s are not in the file"
d = open("disk.img", "rb").read()
assert len(d) == 4 << 20
assert d[65536:65536 + 4096] == b"stdio!" * 682 + b"stdi"
assert d[65536 + 4096:65536 + 8192] == bytes(4096)
assert d[65536 + 8192:65536 + 6000] == (b"stdio!" * 1000)[8192:]
PY

# By hand: one end of a socketpair is qnbd's stdin and stdout.
/usr/bin/python3 - "$QNBD" <<'PY' >>"$TMP/qnbd.log" 2>&1 || fail "qnbd -s on a socketpair"
import errno, nbd, socket, subprocess, sys
for ro in (False, True):
    a, b = socket.socketpair()
    args = [sys.argv[1], "-s"] + (["-r"] if ro else []) + ["disk.img"]
    p = subprocess.Popen(args, stdin=b, stdout=b)
    b.close()
    h = nbd.NBD()
    h.connect_socket(a.detach())
    assert h.is_read_only() == ro
    assert h.pread(6, 65536) == b"stdio!"
    if ro:
        # Let the write reach the server instead of libnbd refusing it.
        h.set_strict_mode(h.get_strict_mode() & ~nbd.STRICT_COMMANDS)
        try:
            h.pwrite(b"x", 0)
            sys.exit("write on -s -r succeeded")
        except nbd.Error as e:
            assert e.errno in ("EPERM", errno.EPERM), e.string
    h.shutdown()
    del h
    rc = p.wait(timeout=10)
    assert rc == 0, "qnbd -s exited with %d" % rc
PY
