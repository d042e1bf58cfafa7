# `cmake --install` (into a DESTDIR) puts the binary, the units, the man
# page and the example configuration where the units expect them: the
# units' ExecStart= names the installed qnbd and the configuration in
# the configured sysconfdir.
. "$(dirname "$0")/../lib.sh"
require cmake
cache=$QNBD_BUILD/CMakeCache.txt
prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$cache")
unitdir=$(sed -n 's/^QNBD_SYSTEMD_UNITDIR:PATH=//p' "$cache")
case $unitdir in /*) ;; *) unitdir=$prefix/$unitdir ;; esac
[ -n "$prefix" ] || fail "no CMAKE_INSTALL_PREFIX in $cache"

if ! DESTDIR=$TMP/root cmake --install "$QNBD_BUILD" >install.log 2>&1; then
  # A build tree where only some targets were built cannot install.
  if grep -q "file INSTALL cannot find" install.log; then
    skip "cmake --install needs every target built: $(grep -m1 -o \
      'cannot find "[^"]*"' install.log)"
  fi
  fail "cmake --install failed: $(tail -5 install.log)"
fi
R=$TMP/root
for f in "$prefix/bin/qnbd" "$unitdir/qnbd.socket" "$unitdir/qnbd.service" \
  "$unitdir/qnbd@.socket" "$unitdir/qnbd@.service" \
  "$prefix/share/man/man8/qnbd.8" \
  "$prefix/share/doc/qnbd/exports.conf.example"; do
  [ -f "$R$f" ] || fail "not installed: $f"
done
"$R$prefix/bin/qnbd" --version | grep -q "^qnbd " || fail "installed qnbd"
grep -q "^ExecStart=$prefix/bin/qnbd --config /.*/qnbd/exports.conf$" \
  "$R$unitdir/qnbd.service" || fail "$(grep ExecStart "$R$unitdir/qnbd.service")"
grep -q "^ExecStart=$prefix/bin/qnbd --config /.*/qnbd/%i.conf$" \
  "$R$unitdir/qnbd@.service" || fail "template ExecStart"
! grep -q "@[A-Z_]*@" "$R$unitdir"/qnbd* "$R$prefix/share/man/man8/qnbd.8" ||
  fail "unsubstituted @VARIABLE@ left"
echo "systemd-install: ok"
