# Bad plugin input fails at start-up with a clear message and a
# non-zero exit, never a crash: a missing file, a bad name, a shared
# object without plugin_init, an unsupported API version, a plugin's
# config or config_complete refusing its parameters, bare parameters
# a plugin cannot take, and bad -D debug flags.
. "$(dirname "$0")/../lib.sh"
. "$QNBD_TESTS/plugins/compare.sh"

expect_fail() { # PATTERN QNBD-ARGS...: qnbd exits non-zero saying PATTERN
  local pattern=$1 rc=0
  shift
  timeout 10 "$QNBD" -U "$TMP/never.sock" "$@" >out 2>&1 || rc=$?
  [ "$rc" != 0 ] && [ "$rc" -lt 124 ] || fail "$*: exit status $rc"
  grep -q -- "$pattern" out || fail "$*: expected '$pattern' in: $(cat out)"
  [ ! -S "$TMP/never.sock" ] || fail "$*: qnbd listened anyway"
}

expect_fail "No such file" --plugin "$TMP/missing.so"
expect_fail "No such file" --plugin no-such-plugin-name
expect_fail "invalid plugin name" --plugin 'bad_name!'
expect_fail "no plugin_init" --plugin "$PLUGINS/nbdkit-noinit-plugin.so"
expect_fail "API version 99" --plugin "$PLUGINS/nbdkit-badapi-plugin.so"
expect_fail "could not parse size" --plugin memory size=lots
# memory's magic key is size: a bare value is a size too.
expect_fail "size=bare-too was rejected" --plugin memory 1M bare-too
expect_fail "takes no parameters" --plugin zero x=1
# example2 has no magic key: only a first bare value is allowed (script=).
expect_fail "must be key=value" --plugin example2 file=/dev/null bare
expect_fail "dir and size parameters are required" --plugin ondemand
cp /etc/hostname "$TMP/notelf.so"
expect_fail "cannot load plugin" --plugin "$TMP/notelf.so"
expect_fail "expected NAME.FLAG=N" -D memory --plugin memory size=1M
expect_fail "must be an integer" -D memory.dir=x --plugin memory size=1M
expect_fail "has no debug flag" -D memory.nosuch=1 --plugin memory size=1M
