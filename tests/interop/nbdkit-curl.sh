# nbdkit's curl plugin (API v1, read_password) reading a file: URL
# under qnbd serves the file's bytes, as under nbdkit.
. "$(dirname "$0")/../lib.sh"
. "$QNBD_TESTS/plugins/compare.sh"
require nbdkit nbdcopy

dd if=/dev/urandom of=disk.img bs=64k count=16 status=none
echo -n secret >pw
serve_both curl "file://$TMP/disk.img" password=+"$TMP/pw"
same_info curl
same_bytes curl
nbdcopy -- "$URI" out.img
cmp disk.img out.img || fail "curl: bytes differ from the file"
