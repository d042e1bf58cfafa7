# nbdkit's python plugin (package nbdkit-plugin-python) running
# tests/plugins/ramdisk.py under qnbd and under nbdkit: same flags,
# exports, bytes after the same writes, and nbdkit.set_error's errno.
. "$(dirname "$0")/../lib.sh"
. "$QNBD_TESTS/plugins/compare.sh"
require nbdkit nbdinfo nbdcopy qemu-io
[ -e "$PLUGINDIR/nbdkit-python-plugin.so" ] ||
  skip "nbdkit-python-plugin.so (apt-get install nbdkit-plugin-python)"

serve_both python "$QNBD_TESTS/plugins/ramdisk.py" size=1M bad=524288
same_info python
for u in "$NK_URI" "$URI"; do
  nbdinfo --list --json "$u" | "$NBD_PY" -c \
    'import json,sys; print(sorted((e["export-name"], e.get("description")) for e in json.load(sys.stdin)["exports"]))'
done >lists
[ "$(sed -n 1p lists)" = "$(sed -n 2p lists)" ] || fail "python: export lists differ: $(cat lists)"
grep -q "('second', None)" lists || fail "python: $(cat lists)"
for u in "$NK_URI" "$URI"; do
  qemu-io -f raw -c 'write -P 0x61 4k 8k' -c 'write -z 8k 1k' \
    -c 'discard 64k 4k' -c flush "$u" >/dev/null
done
rm -f nk.img q.img
for u in "$NK_URI" "$URI"; do
  got=$(client_errno "$u" 'h.pread(4096, 524288)')
  [ "$got" = ENOSPC ] || fail "python: set_error gave $got"
  nbdsh -u "$u" -c 'import sys; sys.stdout.buffer.write(h.pread(262144, 0))' >>"$([ "$u" = "$URI" ] && echo q.img || echo nk.img)"
done
cmp nk.img q.img || fail "python: bytes differ"
