# systemd-analyze verify passes, without a single warning, on every unit
# the build generates (and `cmake --install` installs), with its
# ExecStart= pointed at the built qnbd and the generated qnbd(8) page
# on MANPATH (verify checks Documentation=man: pages).  A template is
# checked as a template and as an instance.
. "$(dirname "$0")/../lib.sh"
require systemd-analyze groff man

gen=$QNBD_BUILD/systemd
[ -f "$gen/qnbd.service" ] || fail "no generated units in $gen"
bindir=$(sed -n 's|^ExecStart=\(.*\)/qnbd .*|\1|p' "$gen/qnbd.service")
[ -n "$bindir" ] || fail "cannot find the qnbd path in $gen/qnbd.service"

mkdir -p units man/man8
cp "$gen"/qnbd.8 man/man8/
for u in qnbd.socket qnbd.service qnbd@.socket qnbd@.service; do
  sed "s|^ExecStart=$bindir/qnbd |ExecStart=$QNBD |" "$gen/$u" >"units/$u"
done
cp units/qnbd@.socket units/qnbd@test.socket
cp units/qnbd@.service units/qnbd@test.service
grep -q "^ExecStart=$QNBD --config " units/qnbd.service ||
  fail "ExecStart was not rewritten"

# The man page itself must be clean roff.
out=$(groff -ww -z -man man/man8/qnbd.8 2>&1) || fail "groff: $out"
[ -z "$out" ] || fail "groff warnings: $out"

cd units
for u in *.socket *.service; do
  out=$(MANPATH=$TMP/man systemd-analyze verify "./$u" 2>&1) ||
    fail "verify $u: $out"
  [ -z "$out" ] || fail "verify $u warns: $out"
  echo "ok $u"
done

# A broken unit must fail here, or the checks above prove nothing.
sed 's|^ExecStart=.*|ExecStart=/nonexistent/qnbd|' qnbd.service >broken.service
if MANPATH=$TMP/man systemd-analyze verify ./broken.service >/dev/null 2>&1
then
  fail "verify accepted a unit whose binary does not exist"
fi
echo "systemd-verify: ok"
