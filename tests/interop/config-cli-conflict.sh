# --config owns the exports: a FILE argument or per-export options next
# to it are refused (exit 1, before anything is opened).
. "$(dirname "$0")/config-common.bash"
truncate -s 1M a.img
printf '[export a]\npath = %s\n' "$TMP/a.img" >good.conf
for args in "a.img" "-r" "-x name" "--plugin memory size=1M" "-f raw" \
  "--export b=a.img"; do
  rc=0
  # shellcheck disable=SC2086
  timeout 10 "$QNBD" --config good.conf -U "$TMP/never.sock" $args 2>err ||
    rc=$?
  [ "$rc" -eq 1 ] || fail "--config with $args: exit $rc"
  grep -q "belong in the file" err || fail "--config with $args: $(cat err)"
done
[ ! -e never.sock ] || fail "qnbd listened"
