# allow = ...: a TCP client from 127.0.0.1 sees and opens only the
# exports that allow it (others are not listed and do not exist for
# it), a client no export allows is disconnected at once, Unix clients
# match "unix", and a reload changes the rules in place.
. "$(dirname "$0")/config-common.bash"
require nbdinfo
cat >exports.conf <<CONF
[export pub]
format = memory
size = 1M
[export lan]
format = memory
size = 2M
allow = 10.0.0.0/8
[export local]
format = memory
size = 3M
allow = 192.0.2.7 127.0.0.0/24, unix
CONF
start_qnbd_tcp --config "$TMP/exports.conf"
TCP="nbd://127.0.0.1:$PORT"
listed() { nbdinfo --list "$1" | grep -o 'export="[^"]*"' | tr '\n' ' '; }
[ "$(listed "$TCP")" = 'export="pub" export="local" ' ] ||
  fail "TCP list: $(listed "$TCP")"
[ "$(nbdinfo --size "$TCP/local")" = 3145728 ] || fail "local size"
if nbdinfo --size "$TCP/lan" >err 2>&1; then fail "lan opened from 127.0.0.1"; fi
grep -qi "no export named\|no such export" err || fail "lan: $(cat err)"
grep -q "export 'lan' is not allowed for 127.0.0.1" qnbd.log ||
  fail "no log line for the refused export"

# Nothing for 127.0.0.1 any more: refused at accept.
sed -i 's/^allow = 192.0.2.7 127.0.0.0\/24, unix/allow = 192.0.2.7/' exports.conf
sed -i 's/^size = 1M/size = 1M\nallow = 10.1.2.3/' exports.conf
kill -HUP "$QNBD_PID"
for _ in $(seq 100); do grep -q "reloaded" qnbd.log && break; sleep 0.1; done
grep -q "allowed clients changed" qnbd.log || fail "rules not updated"
if nbdinfo --list "$TCP" >err 2>&1; then fail "client not refused"; fi
grep -q "refusing 127.0.0.1: no export allows it" qnbd.log ||
  fail "no log line for the refused client"
stop_qnbd

# Unix clients: "unix" allows them, addresses do not.
cat >exports.conf <<CONF
[export tcp-only]
format = memory
size = 1M
allow = 127.0.0.1
[export sock]
format = memory
size = 2M
allow = unix
CONF
start_qnbd --config "$TMP/exports.conf"
[ "$(listed "$URI")" = 'export="sock" ' ] || fail "Unix list: $(listed "$URI")"
[ "$(nbdinfo --size "nbd+unix:///sock?socket=$SOCK")" = 2097152 ] ||
  fail "sock size"
stop_qnbd
