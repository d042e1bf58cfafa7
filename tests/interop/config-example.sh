# The documented example configuration is valid: with its image paths
# moved to a temporary directory (and the commented plugin export
# enabled), qnbd serves every export it describes, as described.
. "$(dirname "$0")/config-common.bash"
require nbdinfo qemu-img nbdkit
qemu-img create -q -f qcow2 disk.qcow2 64M
truncate -s 4M installer.iso
sed -e "s|/var/lib/qnbd|$TMP|" -e 's/^#\[export random\]/[export random]/' \
  -e 's/^#plugin = random/plugin = random/' -e 's/^#param = /param = /' \
  "$QNBD_SRC/systemd/exports.conf.example" >exports.conf
grep -q "^plugin = random" exports.conf || fail "example changed: update me"
start_qnbd --config "$TMP/exports.conf"
nbdinfo --list "$URI" >list
for e in disk installer scratch random; do
  grep -q "export=\"$e\"" list || fail "$e not served: $(cat list)"
done
size() { nbdinfo --size "nbd+unix:///$1?socket=$SOCK"; }
[ "$(size disk)" = 67108864 ] || fail "disk"
[ "$(size scratch)" = 1073741824 ] || fail "scratch"
[ "$(size random)" = 1048576 ] || fail "random"
nbdinfo "nbd+unix:///installer?socket=$SOCK" | grep -q "is_read_only: true" ||
  fail "installer should be read-only"
stop_qnbd
