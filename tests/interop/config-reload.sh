# Good reloads: an export pointed at another image is replaced (its
# connected client keeps the old image until it disconnects), an
# unchanged plugin export is kept as it is (not loaded again), and a
# burst of SIGHUPs ends with the file's last state.
. "$(dirname "$0")/config-common.bash"
require nbdinfo nbdkit
printf '\1%.0s' $(seq 4096) >one.img
printf '\2%.0s' $(seq 8192) >two.img
cat >exports.conf <<CONF
[export disk]
path = $TMP/one.img
[export pat]
plugin = pattern
param = size=1M
CONF
start_qnbd -v --config "$TMP/exports.conf"
loads=$(grep -c "nbdkit plugin pattern" qnbd.log)
[ "$loads" -eq 1 ] || fail "pattern loaded $loads times"

# A client on the old image, reading after the reload.
cat >holder.py <<'PY'
import nbd, os, sys, time
h = nbd.NBD()
h.connect_uri(sys.argv[1])
open("holder.ready", "w").close()
while not os.path.exists("holder.go"):
    time.sleep(0.05)
assert h.get_size() == 4096
assert h.pread(4096, 0) == b"\1" * 4096
h.shutdown()
open("holder.ok", "w").close()
PY
bg /usr/bin/python3 holder.py "nbd+unix:///disk?socket=$SOCK"
for _ in $(seq 100); do [ -e holder.ready ] && break; sleep 0.1; done

sed -i "s|one.img|two.img|" exports.conf
kill -HUP "$QNBD_PID"
for _ in $(seq 100); do grep -q "reloaded" qnbd.log && break; sleep 0.1; done
grep -q "reloaded .*(0 new, 1 changed, 0 removed)" qnbd.log ||
  fail "$(grep reload qnbd.log)"
[ "$(nbdinfo --size "nbd+unix:///disk?socket=$SOCK")" = 8192 ] ||
  fail "new clients do not get the new image"
touch holder.go
for _ in $(seq 100); do [ -e holder.ok ] && break; sleep 0.1; done
[ -e holder.ok ] || fail "the old image's client failed"
[ "$(grep -c "nbdkit plugin pattern" qnbd.log)" -eq 1 ] ||
  fail "the unchanged plugin export was loaded again"
[ "$(nbdinfo --size "nbd+unix:///pat?socket=$SOCK")" = 1048576 ] ||
  fail "plugin export after reload"

# A burst: every SIGHUP during a reload asks for one more read.
for i in 1 2 3 4 5; do
  printf '[export disk]\npath = %s\n[export pat]\nplugin = pattern\n' \
    "$TMP/two.img" >exports.conf
  printf 'param = size=1M\n[export burst%d]\nformat = memory\nsize = 1M\n' \
    "$i" >>exports.conf
  kill -HUP "$QNBD_PID"
done
for _ in $(seq 100); do
  nbdinfo --list "$URI" | grep -q 'export="burst5"' && break
  sleep 0.1
done
nbdinfo --list "$URI" | grep -q 'export="burst5"' || fail "last state missing"
[ "$(nbdinfo --list "$URI" | grep -c 'export="burst')" -eq 1 ] ||
  fail "stale burst exports"
stop_qnbd
