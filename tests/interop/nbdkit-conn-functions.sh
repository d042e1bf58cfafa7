# The per-connection nbdkit_* functions answer for the right client on
# whichever worker thread serves a request (tests/plugins/probe.c):
# export name (also the default export's name), TLS, peer family and
# SO_PEERCRED pid/uid/gid; list_exports; nbdkit_disconnect drops just
# that client; nbdkit_shutdown stops the server cleanly.
. "$(dirname "$0")/../lib.sh"
. "$QNBD_TESTS/plugins/compare.sh"
require nbdinfo

start_qnbd --plugin "$PLUGINS/nbdkit-probe-plugin.so"
"$NBD_PY" - "$SOCK" <<'PY' || fail "connection functions"
import os, sys, nbd
sock = sys.argv[1]

def probe(name, parallel=1):
    h = nbd.NBD()
    h.set_export_name(name)
    h.connect_unix(sock)
    bufs = [nbd.Buffer(512) for _ in range(parallel)]
    cookies = [h.aio_pread(b, 0) for b in bufs]
    while h.aio_in_flight() > 0:
        h.poll(-1)
    for c in cookies:
        h.aio_command_completed(c)
    texts = {b.to_bytearray().split(b"\0")[0].decode() for b in bufs}
    assert len(texts) == 1, texts
    h.shutdown()
    return dict(kv.split("=", 1) for kv in texts.pop().split())

want = {"tls": "0", "peer": "unix", "pid": str(os.getpid()),
        "uid": str(os.getuid()), "gid": str(os.getgid())}
got = probe("hello", parallel=16)
assert got == dict(want, export="hello", opened="hello"), got
got = probe("")
assert got["export"] == "probe-default" == got["opened"], got
print("probe ok")
PY

nbdinfo --list --json "$URI" | "$NBD_PY" -c '
import json, sys
got = sorted((e["export-name"], e.get("description")) for e in json.load(sys.stdin)["exports"])
assert got == [("probe-a", "the first"), ("probe-b", None)], got' ||
  fail "list_exports"

# nbdkit_disconnect: this client is dropped, the server goes on.
"$NBD_PY" - "$URI" <<'PY' || fail "nbdkit_disconnect"
import sys, nbd
h = nbd.NBD()
h.connect_uri(sys.argv[1])
try:
    h.pread(512, 1024 * 1024 - 4096)
    h.pread(512, 0)
    raise SystemExit("still connected after nbdkit_disconnect")
except nbd.Error:
    pass
PY
nbdinfo --size "$URI" >/dev/null || fail "server gone after a disconnect"

# nbdkit_shutdown: the server exits by itself, cleanly.
nbdsh -u "$URI" -c 'h.pread(512, 1024 * 1024 - 8192)' 2>/dev/null || true
for _ in $(seq 100); do kill -0 "$QNBD_PID" 2>/dev/null || break; sleep 0.1; done
! kill -0 "$QNBD_PID" 2>/dev/null || fail "nbdkit_shutdown did not stop qnbd"
wait "$QNBD_PID" || fail "qnbd exited with $? after nbdkit_shutdown"
