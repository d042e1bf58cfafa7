# Every plugin in nbdkit's plugin directory loads into qnbd: each
# nbdkit_* symbol a plugin imports is exported by qnbd (which exports
# the nbdkit ABI and nothing else of its own), and qnbd dlopens every
# plugin with RTLD_NOW, runs its plugin_init, load and config (an
# unknown key here), so that the plugin itself answers.
. "$(dirname "$0")/../lib.sh"
. "$QNBD_TESTS/plugins/compare.sh"
require nm

nm -D --defined-only "$QNBD" | awk '{print $3}' | grep -v '@' | sort >exported
grep -v -E "^(nbdkit_|__(asan|ubsan|tsan|lsan|msan)_)" exported >leaked || true
[ ! -s leaked ] || fail "qnbd exports non-nbdkit symbols: $(tr '\n' ' ' <leaked)"
[ "$(wc -l <exported)" -ge 51 ] || fail "qnbd exports only $(wc -l <exported) nbdkit_* symbols"

n=0
for so in "$PLUGINDIR"/nbdkit-*-plugin.so; do
  name=$(basename "$so" .so)
  name=${name#nbdkit-}
  name=${name%-plugin}
  nm -D --undefined-only "$so" | awk '$2 ~ /^nbdkit_/ {print $2}' | sort >want
  missing=$(comm -23 want exported)
  [ -z "$missing" ] || fail "$name imports unexported: $missing"

  rc=0
  timeout 10 "$QNBD" -U "$TMP/never.sock" --plugin "$name" \
    qnbd_test_no_such_key=1 >out 2>&1 || rc=$?
  [ "$rc" != 0 ] && [ "$rc" != 124 ] || fail "$name: qnbd exited with $rc"
  if grep -E -q 'cannot load plugin|undefined symbol|not an nbdkit plugin' out ||
    ! grep -q "error: $name: " out; then
    fail "$name did not load: $(cat out)"
  fi
  n=$((n + 1))
done
[ "$n" -ge 20 ] || fail "only $n plugins found in $PLUGINDIR"
echo "$n plugins loaded"
