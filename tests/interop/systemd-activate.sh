# qnbd under systemd-socket-activate on a TCP and a Unix socket, with a
# NOTIFY_SOCKET (abstract namespace) this test owns: READY=1 (with
# MAINPID) once exports are open, WATCHDOG=1 pings, nbdinfo and qemu-io
# on both sockets, a SIGHUP reload (RELOADING=1, READY=1) of a changed
# configuration while a client is connected to an export the reload
# removes, and SIGTERM during a write load (STOPPING=1): every write
# qnbd acknowledged is in the image after it exits.
. "$(dirname "$0")/../lib.sh"
require systemd-socket-activate nbdinfo qemu-io

PORT=$(free_port)
NAME="qnbd-test-$$-$RANDOM"
truncate -s 64M disk.img
truncate -s 1M ro.img

cat >exports.conf <<CONF
[export disk]
description = first
path = $TMP/disk.img
format = raw

[export old]
format = memory
size = 16M

[export ro]
path = $TMP/ro.img
read-only = yes
allow = unix, 127.0.0.1
CONF

# Every datagram on @NAME, one line each ('|' for newlines).
cat >notify.py <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + sys.argv[1])
with open(sys.argv[2], "a") as f:
    print("bound", file=f, flush=True)
    while True:
        f.write(s.recv(4096).decode().replace("\n", "|") + "\n")
        f.flush()
PY
bg /usr/bin/python3 notify.py "$NAME" notify.log
for _ in $(seq 50); do grep -q bound notify.log 2>/dev/null && break; sleep 0.1; done

systemd-socket-activate -l 127.0.0.1:"$PORT" -l "$TMP/qnbd.sock" \
  -E NOTIFY_SOCKET="@$NAME" -E WATCHDOG_USEC=200000 \
  "$QNBD" --config "$TMP/exports.conf" 2>qnbd.log &
QNBD_PID=$!
_pids+=("$QNBD_PID")
wait_for_port "$PORT" # systemd-socket-activate starts qnbd on this contact

# wait_notify PATTERN [COUNT]: at least COUNT lines match (5 s).
wait_notify() {
  for _ in $(seq 50); do
    [ "$(grep -c -- "$1" notify.log)" -ge "${2:-1}" ] && return 0
    sleep 0.1
  done
  cat notify.log
  fail "no notification matching '$1' (x${2:-1})"
}

# -- ready, watchdog ----------------------------------------------------
[ "$(nbdinfo --size "nbd://127.0.0.1:$PORT/disk")" = 67108864 ] ||
  fail "TCP: wrong size"
wait_notify "^READY=1|MAINPID=$QNBD_PID|"
wait_notify "^WATCHDOG=1$" 3
grep -q "socket activation" qnbd.log || fail "qnbd did not adopt the sockets"

# -- clients on both sockets ------------------------------------------
UNIX="nbd+unix:///?socket=$TMP/qnbd.sock"
nbdinfo --list "$UNIX" >list1
grep -q 'export="old"' list1 || fail "old not listed"
grep -q 'description: first' list1 || fail "no description"
qemu-io -f raw "nbd://127.0.0.1:$PORT/disk" \
  -c "write -P 0xab 0 1M" -c "read -P 0xab 0 1M" >qio1 || fail "qemu-io TCP"
grep -q "read 1048576/1048576" qio1 || fail "qemu-io TCP read"
qemu-io -f raw "nbd+unix:///disk?socket=$TMP/qnbd.sock" \
  -c "read -P 0xab 0 1M" >qio2 || fail "qemu-io Unix read"
if qemu-io -f raw "nbd+unix:///ro?socket=$TMP/qnbd.sock" \
  -c "write -P 1 0 4k" >qio3 2>&1; then
  fail "read-only export accepted a write"
fi

# -- reload while a client uses an export the reload removes ------------
cat >holder.py <<'PY'
import nbd, os, sys, time
h = nbd.NBD()
h.connect_uri(sys.argv[1])
h.pwrite(b"\x5a" * 65536, 0)
open("holder.ready", "w").close()
while not os.path.exists("holder.go"):
    time.sleep(0.05)
h.pwrite(b"\xa5" * 65536, 65536)
assert h.pread(65536, 0) == b"\x5a" * 65536
assert h.pread(65536, 65536) == b"\xa5" * 65536
h.shutdown()
open("holder.ok", "w").close()
PY
bg /usr/bin/python3 holder.py "nbd+unix:///old?socket=$TMP/qnbd.sock"
for _ in $(seq 100); do [ -e holder.ready ] && break; sleep 0.1; done
[ -e holder.ready ] || fail "holder did not connect"

sed -e 's/^description = first/description = second/' \
  -e 's/^\[export old\]/[export new]/' exports.conf >exports.new
mv exports.new exports.conf
kill -HUP "$QNBD_PID"
wait_notify "^RELOADING=1"
wait_notify "^READY=1" 2
nbdinfo --list "$UNIX" >list2
grep -q 'export="new"' list2 || fail "new export not listed after reload"
! grep -q 'export="old"' list2 || fail "old export still listed"
grep -q 'description: second' list2 || fail "description not updated"
if nbdinfo "nbd+unix:///old?socket=$TMP/qnbd.sock" >/dev/null 2>&1; then
  fail "a new client could open the removed export"
fi
touch holder.go
for _ in $(seq 100); do [ -e holder.ok ] && break; sleep 0.1; done
[ -e holder.ok ] || fail "the connected client failed after the reload"
for _ in $(seq 50); do grep -q "export 'old' closed" qnbd.log && break; sleep 0.1; done
grep -q "export 'old' closed" qnbd.log || fail "old export not closed"

# -- SIGTERM under a write load -----------------------------------------
cat >writer.py <<'PY'
import nbd, os, sys, threading
uri, nthreads, bs = sys.argv[1], 4, 65536
region = 64 * 1024 * 1024 // nthreads
acked, lock = [], threading.Lock()
def block(t, i):
    return (b"%02d:%08d:" % (t, i)) * (bs // 12) + b"\0" * (bs % 12)
def run(t):
    try:
        h = nbd.NBD()
        h.connect_uri(uri)
        for i in range(region // bs):
            h.pwrite(block(t, i), t * region + i * bs)
            with lock:
                acked.append((t, i))
                if len(acked) == 200:
                    open("writer.busy", "w").close()
    except nbd.Error:
        pass  # the server went away: writes not acknowledged are not ours
threads = [threading.Thread(target=run, args=(t,)) for t in range(nthreads)]
for th in threads: th.start()
for th in threads: th.join()
with open("acked", "w") as f:
    for t, i in acked:
        f.write("%d %d\n" % (t, i))
PY
truncate -s 0 disk.img
truncate -s 64M disk.img
/usr/bin/python3 writer.py "nbd://127.0.0.1:$PORT/disk" &
WRITER=$!
_pids+=("$WRITER")
for _ in $(seq 100); do [ -e writer.busy ] && break; sleep 0.1; done
[ -e writer.busy ] || fail "the write load did not start"
start=$(date +%s)
kill -TERM "$QNBD_PID"
rc=0
wait "$QNBD_PID" || rc=$?
[ "$rc" -eq 0 ] || fail "qnbd exited with $rc"
[ $(($(date +%s) - start)) -le 15 ] || fail "qnbd took too long to stop"
wait "$WRITER" || fail "writer failed"
wait_notify "^STOPPING=1"
grep -q "exited cleanly" qnbd.log || fail "no clean exit"

cat >check.py <<'PY'
import sys
bs, region = 65536, 64 * 1024 * 1024 // 4
n = 0
with open("disk.img", "rb") as img:
    for line in open("acked"):
        t, i = map(int, line.split())
        img.seek(t * region + i * bs)
        want = (b"%02d:%08d:" % (t, i)) * (bs // 12) + b"\0" * (bs % 12)
        if img.read(bs) != want:
            sys.exit("acknowledged write %d/%d lost" % (t, i))
        n += 1
print("%d acknowledged writes all present" % n)
if n < 200:
    sys.exit("too few writes to prove anything")
PY
/usr/bin/python3 check.py
echo "systemd-activate: ok"
