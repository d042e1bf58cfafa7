# plugins/qcow2 under real nbdkit: for a corpus of qemu-img-made images
# (v2 and v3, cluster sizes 512 B..2 MiB, zlib and zstd compression,
# extended L2, a qcow2 <- qcow2 <- raw chain, snapshots, zero clusters)
# the bytes read through nbdkit equal `qemu-img convert -O raw`, and
# `qemu-img map` over the export agrees with qemu-img's map of the file.
# Also: only plugin_init is exported, bad input stops nbdkit with a
# clear error, and qnbd loads the same .so.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/../plugins/compare.sh"
require nbdkit nbdinfo nbdcopy qemu-img qemu-io nm

PLUGIN=$QNBD_BUILD/plugins/qcow2/nbdkit-qcow2-plugin.so
[ -e "$PLUGIN" ] || fail "$PLUGIN was not built"

# The ABI surface: plugin_init is the only symbol the .so defines for
# others (weak toolchain hooks aside); the engine stays inside.
defs=$(nm -D --defined-only "$PLUGIN" | awk '$2 != "w" && $2 != "v" {print $3}')
[ "$defs" = plugin_init ] || fail "exported symbols: $defs"
nm -D --undefined-only "$PLUGIN" | grep -q ' nbdkit_error$' ||
  fail "nbdkit_error is not imported"

# same_map_runs FILE-MAP NBD-MAP: equal data/zero flags by range
# (adjacent entries with the same flags merged: the file's map splits
# where the host offset or depth changes, NBD's does not).
same_map_runs() {
  "$NBD_PY" - "$1" "$2" <<'PYEOF'
import json, sys
def runs(path):
    out = []
    for e in json.load(open(path)):
        if out and out[-1][2:] == [e["data"], e["zero"]] \
                and out[-1][0] + out[-1][1] == e["start"]:
            out[-1][1] += e["length"]
        else:
            out.append([e["start"], e["length"], e["data"], e["zero"]])
    return out
a, b = runs(sys.argv[1]), runs(sys.argv[2])
if a != b:
    sys.exit("file: %s\nnbd:  %s" % (a, b))
PYEOF
}

# check IMG: bytes and map of IMG served by nbdkit equal qemu-img's.
NCHECKED=0
check() {
  local img=$1
  qemu-img convert -O raw "$img" "$img.ref"
  qemu-img map --output=json "$img" >"$img.map"
  start_nbdkit "$PLUGIN" "file=$img"
  rm -f got.raw
  nbdcopy -- "$NK_URI" got.raw
  cmp -s "$img.ref" got.raw || fail "$img: bytes differ from qemu-img convert"
  qemu-img map --output=json -f raw "$NK_URI" >got.map
  same_map_runs "$img.map" got.map || fail "$img: map differs from qemu-img"
  stop_nbdkit
  NCHECKED=$((NCHECKED + 1))
}

# pattern IMG: data, explicit zeroes (allocated and not), gaps.
pattern() {
  qemu-io -f qcow2 -c "write -P 0x11 0 100k" -c "write -P 0x22 300k 64k" \
    -c "write -z 512k 128k" -c "write -z -u 768k 64k" \
    -c "write -P 0x33 1M 4k" -c "write -P 0x44 1500k 1k" "$1" >/dev/null
}

# v3 at several cluster sizes (2 MiB: one cluster spans the pattern).
for cs in 512 4k 64k 2M; do
  qemu-img create -q -f qcow2 -o cluster_size=$cs v3-$cs.qcow2 4M
  pattern v3-$cs.qcow2
  check v3-$cs.qcow2
done
# v2 (compat 0.10): no zero clusters, so qemu writes zeroes.
qemu-img create -q -f qcow2 -o compat=0.10,cluster_size=4k v2.qcow2 4M
pattern v2.qcow2
check v2.qcow2

# Compressed, zlib and zstd, with some clusters rewritten uncompressed.
"$NBD_PY" -c '
import os
with open("src.raw", "wb") as f:
    f.write(b"compress me " * 100000)
    f.write(os.urandom(256 << 10))
    f.write(bytes(512 << 10))
    f.write(b"tail" * 65536)'
for z in zlib zstd; do
  qemu-img convert -q -c -O qcow2 -o compression_type=$z src.raw $z.qcow2
  qemu-io -f qcow2 -c "write -P 0x55 192k 64k" -c "write -z 64k 4k" \
    $z.qcow2 >/dev/null
  check $z.qcow2
done

# Extended L2: 2 KiB subclusters of 64 KiB clusters.
qemu-img create -q -f qcow2 -o extended_l2=on ext.qcow2 4M
qemu-io -f qcow2 -c "write -P 0x61 6k 2k" -c "write -z 10k 4k" \
  -c "write -P 0x62 1M 66k" -c "write -z -u 2M 64k" ext.qcow2 >/dev/null
check ext.qcow2

# A chain: base.raw (sparse, some data) <- mid.qcow2 <- top.qcow2, the
# top larger than its backing file.
truncate -s 4M base.raw
dd if=/dev/urandom of=base.raw bs=64k seek=1 count=3 conv=notrunc status=none
dd if=/dev/urandom of=base.raw bs=64k seek=40 count=1 conv=notrunc status=none
qemu-img create -q -f qcow2 -b base.raw -F raw mid.qcow2 4M
qemu-io -f qcow2 -c "write -P 0x71 128k 64k" -c "write -z 2560k 64k" \
  mid.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 top.qcow2 6M
qemu-io -f qcow2 -c "write -P 0x72 70k 2k" -c "write -z 3M 64k" \
  -c "write -P 0x73 5M 64k" top.qcow2 >/dev/null
check top.qcow2

# Snapshots: the active image, then snapshot "one" by name and by id.
qemu-img create -q -f qcow2 snap.qcow2 2M
qemu-io -f qcow2 -c "write -P 0x81 0 256k" snap.qcow2 >/dev/null
qemu-img snapshot -c one snap.qcow2
qemu-io -f qcow2 -c "write -P 0x82 64k 64k" -c "write -z 128k 64k" \
  snap.qcow2 >/dev/null
check snap.qcow2
qemu-img convert -l snapshot.name=one -O raw snap.qcow2 one.ref
cmp -s one.ref snap.qcow2.ref && fail "the snapshot reads like the image"
for s in one 1; do
  start_nbdkit "$PLUGIN" snap.qcow2 "snapshot=$s"
  rm -f got.raw
  nbdcopy -- "$NK_URI" got.raw
  cmp -s one.ref got.raw || fail "snapshot=$s: bytes differ"
  stop_nbdkit
done

# What nbdinfo sees: read-only, multi-conn, cache, a description, the
# cluster size as preferred block size.
start_nbdkit "$PLUGIN" file=zstd.qcow2
nbdinfo --json "$NK_URI" >info.json
stop_nbdkit
"$NBD_PY" - info.json <<'PYEOF' || fail "nbdinfo shows the wrong export"
import json, sys
e = json.load(open(sys.argv[1]))["exports"][0]
want = {"is_read_only": True, "can_multi_conn": True, "can_cache": True,
        "can_zero": False, "can_trim": False, "can_flush": False,
        "block_size_minimum": 1, "block_size_preferred": 65536,
        "description": "qcow2 image v3, cluster size 64 KiB, zstd compression"}
bad = {k: e.get(k) for k in want if e.get(k) != want[k]}
if "base:allocation" not in e.get("contexts", []):
    bad["contexts"] = e.get("contexts")
sys.exit("unexpected: %s" % bad if bad else 0)
PYEOF

# Bad input: nbdkit refuses to start, exits non-zero, says why.
truncate -s 1M notqcow2.raw
# Legacy AES, not LUKS: LUKS creation benchmarks PBKDF and can fail on
# a loaded machine ("Unable to get accurate CPU usage").
qemu-img create -q --object secret,id=sec0,data=123456 -f qcow2 \
  -o encrypt.format=aes,encrypt.key-secret=sec0 aes.qcow2 1M
# Under an ASan preload (sanitizer builds), nbdkit's exit after a
# start-up error deadlocks in libp11-kit's destructor (freelocale), for
# Debian's own plugins too (`nbdkit file /nonexistent`), and ignores
# SIGTERM: there the KILL after the
# timeout counts as the failed start, the message still must be right.
preload=$(sanitizer_preload "$PLUGIN")
limit=$([ -n "$preload" ] && echo 5 || echo 20)
bad() {
  local want=$1 rc=0
  shift
  LD_PRELOAD=$preload ASAN_OPTIONS=detect_leaks=0 timeout -s KILL $limit \
    nbdkit -U - "$PLUGIN" "$@" --run true >bad.out 2>&1 || rc=$?
  if [ "$rc" = 0 ] || { [ "$rc" -ge 124 ] && [ -z "$preload" ]; }; then
    fail "nbdkit with $*: exit status $rc"
  fi
  grep -q "^nbdkit: .*error: .*$want" bad.out ||
    { cat bad.out; fail "no clear error for $*: want '$want'"; }
}
bad "missing.qcow2: No such file or directory" missing.qcow2
bad "notqcow2.raw: bad magic" notqcow2.raw
bad "encrypted images (legacy AES) are not supported" aes.qcow2
bad "no snapshot with id or name 'two'" snap.qcow2 snapshot=two
bad "the file parameter is required" snapshot=one
bad "unknown parameter 'bogus'" v2.qcow2 bogus=1

# A corrupt L2 entry (reserved bits set) for the cluster at 0: nbdkit
# serves the image, reads of that cluster fail with EIO (the engine's
# message naming the offset in nbdkit's log), the rest reads fine.
cp v3-64k.qcow2 corrupt.qcow2
"$NBD_PY" - corrupt.qcow2 <<'PYEOF'
import struct, sys
with open(sys.argv[1], "r+b") as f:
    hdr = f.read(48)
    f.seek(struct.unpack_from(">Q", hdr, 40)[0])
    l2 = struct.unpack(">Q", f.read(8))[0] & 0x00FFFFFFFFFFFE00
    f.seek(l2)
    e = struct.unpack(">Q", f.read(8))[0]
    f.seek(l2)
    f.write(struct.pack(">Q", e | (1 << 57)))
PYEOF
: >"$TMP/nbdkit.log"
start_nbdkit "$PLUGIN" corrupt.qcow2
[ "$(client_errno "$NK_URI" 'h.pread(4096, 0)')" = EIO ] ||
  fail "a corrupt L2 entry did not give EIO"
[ "$(client_errno "$NK_URI" 'h.pread(4096, 1 << 20)')" = OK ] ||
  fail "reading past the corrupt cluster failed"
stop_nbdkit
grep -q "error: .*offset" "$TMP/nbdkit.log" ||
  fail "nbdkit's log does not say where the corruption is"

# The same .so under qnbd: bytes, map and a clean exit (the engine's
# per-thread buffers outlive the plugin's unload there).
start_qnbd --plugin "$PLUGIN" file=top.qcow2 cache-size=1M
rm -f got.raw
nbdcopy -- "$URI" got.raw
cmp -s top.qcow2.ref got.raw || fail "qnbd: bytes differ"
qemu-img map --output=json -f raw "$URI" >got.map
same_map_runs top.qcow2.map got.map || fail "qnbd: map differs"
stop_qnbd
echo "checked $NCHECKED images and 2 snapshot opens"
