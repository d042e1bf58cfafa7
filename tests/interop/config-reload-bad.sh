# SIGHUP with a file that is wrong keeps the running configuration:
# a syntax error (FILE:LINE), an image that cannot be opened, and a
# change that would reopen an image the running export has open.  A
# good file afterwards is applied.
. "$(dirname "$0")/config-common.bash"
require nbdinfo
truncate -s 1M a.img
cat >exports.conf <<CONF
[export a]
path = $TMP/a.img
[export m]
format = memory
size = 1M
CONF
start_qnbd --config "$TMP/exports.conf"

# reload: SIGHUP and wait until the log has N reload outcomes.
n=0
reload() {
  n=$((n + 1))
  kill -HUP "$QNBD_PID"
  for _ in $(seq 100); do
    [ "$(grep -cE 'reload failed|reloaded ' qnbd.log)" -ge "$n" ] && return
    sleep 0.1
  done
  fail "reload $n did not finish"
}
listed() { nbdinfo --list "$URI" | grep -o 'export="[^"]*"' | tr '\n' ' '; }
before=$(listed)
[ "$before" = 'export="a" export="m" ' ] || fail "exports: $before"

printf '[export a]\npath = %s\nthis is wrong\n' "$TMP/a.img" >exports.conf
reload
grep -q "exports.conf:3: expected 'key = value'" qnbd.log || fail "no file:line"
[ "$(grep -c 'keeping the running configuration' qnbd.log)" -eq 1 ] ||
  fail "no 'keeping' message"
[ "$(listed)" = "$before" ] || fail "exports changed after a bad file"

printf '[export a]\npath = %s\n[export b]\npath = %s\n' "$TMP/a.img" \
  "$TMP/missing.img" >exports.conf
reload
grep -q "exports.conf:3: export 'b' cannot be opened" qnbd.log ||
  fail "no file:line for the image that cannot be opened"
[ "$(listed)" = "$before" ] || fail "exports changed after a failed open"

printf '[export a]\npath = %s\nread-only = yes\n' "$TMP/a.img" >exports.conf
reload
grep -q "exports.conf:1: export 'a': image '.*a.img' is open with other settings" \
  qnbd.log || fail "reopen of a running image not refused"
[ "$(listed)" = "$before" ] || fail "exports changed after a refused reopen"
[ "$(grep -c 'keeping the running configuration' qnbd.log)" -eq 3 ] ||
  fail "expected three refused reloads"

printf '[export a]\npath = %s\n[export c]\nformat = memory\nsize = 2M\n' \
  "$TMP/a.img" >exports.conf
reload
[ "$(listed)" = 'export="a" export="c" ' ] || fail "good reload: $(listed)"
[ "$(nbdinfo --size "nbd+unix:///c?socket=$SOCK")" = 2097152 ] ||
  fail "new export size"
stop_qnbd
