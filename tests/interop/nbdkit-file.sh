# nbdkit's file plugin under qnbd and nbdkit on copies of one sparse
# file: same flags, bytes and qemu-img map; writes, zeroes and trims
# reach the file; dir= mode lists the files and serves each by export
# name (nbdkit_export_name, list_exports).
. "$(dirname "$0")/../lib.sh"
. "$QNBD_TESTS/plugins/compare.sh"
require nbdkit nbdinfo nbdcopy qemu-img qemu-io

truncate -s 8M disk.img
printf 'hello' | dd of=disk.img bs=1 seek=1048576 conv=notrunc status=none
dd if=/dev/urandom of=disk.img bs=64k seek=64 count=4 conv=notrunc status=none
cp --sparse=always disk.img nk.disk
cp --sparse=always disk.img q.disk

start_nbdkit file nk.disk
start_qnbd --plugin file q.disk
same_info file
same_bytes file
same_map file
for uri in "$NK_URI" "$URI"; do
  qemu-io -f raw -c 'write -P 0x42 2M 128k' -c 'write -z 4M 64k' \
    -c 'discard 4352k 256k' -c 'flush' "$uri" >/dev/null
done
cmp nk.disk q.disk || fail "file: files differ after the same writes"
same_map file-after-writes
stop_qnbd
stop_nbdkit

# dir= mode: one export per file, chosen by export name.
mkdir d
echo first >d/one
echo second >d/two
start_nbdkit file dir=d
start_qnbd --plugin file dir=d
nbdinfo --list --json "$NK_URI" | "$NBD_PY" -c \
  'import json,sys; print(sorted(e["export-name"] for e in json.load(sys.stdin)["exports"]))' >nk.list
nbdinfo --list --json "$URI" | "$NBD_PY" -c \
  'import json,sys; print(sorted(e["export-name"] for e in json.load(sys.stdin)["exports"]))' >q.list
diff nk.list q.list || fail "file dir=: export lists differ"
grep -q "'one', 'two'" q.list || fail "file dir=: $(cat q.list)"
got=$(nbdsh -u "nbd+unix:///two?socket=$SOCK" -c 'print(h.pread(6, 0).decode().strip())')
[ "$got" = second ] || fail "file dir=: export two read '$got'"
