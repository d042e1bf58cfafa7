# A file without exports is an error, reported after its last line; a
# missing file names the file.
. "$(dirname "$0")/config-common.bash"
printf '# nothing here\n\n' >bad.conf
rejected bad.conf "3:no [export NAME] section"
rc=0
"$QNBD" --config missing.conf -U "$TMP/never.sock" 2>err || rc=$?
[ "$rc" -eq 1 ] || fail "missing file: exit $rc"
grep -q "missing.conf: No such file or directory" err || fail "$(cat err)"
