# Shared by tests/interop/config-*.sh (sourced, not a test itself):
# run qnbd on a configuration that must be refused.
. "$(dirname "$0")/../lib.sh"

# rejected FILE LINE:TEXT...: `qnbd --config FILE` must exit 1 without
# listening, and print "FILE:LINE: ...TEXT..." for every pair given
# (each error on its own line, none missing).
rejected() {
  local file=$1 rc=0
  shift
  timeout 10 "$QNBD" --config "$file" -U "$TMP/never.sock" 2>"$TMP/err.log" ||
    rc=$?
  [ "$rc" -eq 1 ] || fail "$file: exit $rc, expected 1: $(cat "$TMP/err.log")"
  [ ! -e "$TMP/never.sock" ] || fail "$file: qnbd listened anyway"
  for want in "$@"; do
    local line=${want%%:*} text=${want#*:}
    grep -F -- "$file:$line: " "$TMP/err.log" | grep -qF -- "$text" ||
      fail "$file: no '$file:$line: ...$text...' in: $(cat "$TMP/err.log")"
  done
  echo "ok $file: $(wc -l <"$TMP/err.log") error line(s)"
}
