# Helpers shared by the qcow2-*.sh interop tests (sourced after
# ../lib.sh): compare what the qcow2 engine reads, maps and reports with
# what qemu-img reads, maps and reports, directly (qnbd-img) and through
# qnbd over NBD.
require qemu-img qemu-io

QIMG=${QNBD_IMG:-$QNBD_BUILD/core/tools/qnbd-img}
[ -x "$QIMG" ] || fail "qnbd-img not built at $QIMG"
PY=/usr/bin/python3
NIMAGES=0

# check_engine IMG: qnbd-img dump and map against qemu-img; leaves
# IMG.ref (the bytes), IMG.map (qemu-img's map) and IMG.info/IMG.ginfo
# (qemu-img's and qnbd-img's info) for verify_all.
check_engine() {
  local img=$1
  NIMAGES=$((NIMAGES + 1))
  qemu-img convert -O raw "$img" "$img.ref"
  "$QIMG" dump "$img" >"$TMP/got.raw" || fail "$img: dump failed"
  cmp -s "$img.ref" "$TMP/got.raw" || fail "$img: bytes differ from qemu-img"
  qemu-img map --output=json "$img" >"$img.map"
  "$QIMG" map --output=json "$img" >"$TMP/got.map"
  diff "$img.map" "$TMP/got.map" || fail "$img: map differs from qemu-img"
  qemu-img info --output=json "$img" >"$img.info"
  "$QIMG" info --output=json "$img" >"$img.ginfo" || fail "$img: info failed"
}

# check_snapshot IMG SNAP: the snapshot's bytes (SNAP a name or an id)
# as qemu-img reads them.
check_snapshot() {
  NIMAGES=$((NIMAGES + 1))
  qemu-img convert -l "snapshot.name=$2" -O raw "$1" "$TMP/ref.raw" \
    2>/dev/null ||
    qemu-img convert -l "snapshot.id=$2" -O raw "$1" "$TMP/ref.raw"
  "$QIMG" dump -l "$2" "$1" >"$TMP/got.raw" || fail "$1@$2: dump failed"
  cmp -s "$TMP/ref.raw" "$TMP/got.raw" || fail "$1@$2: bytes differ"
}

# verify_all SOCKET IMG...: in one Python process, for export eN (IMG
# number N) of the qnbd on SOCKET: info JSON equal field by field; the
# bytes read over NBD equal IMG.ref; base:allocation (merged) equals the
# data/zero flags of qemu-img map.
verify_all() {
  $PY - "$@" <<'PYEOF'
import json, sys
import nbd
sock, imgs = sys.argv[1], sys.argv[2:]
bad = 0
def runs(entries):
    out = []
    for s, l, d, z in entries:
        if out and out[-1][2:] == [d, z] and out[-1][0] + out[-1][1] == s:
            out[-1][1] += l
        else:
            out.append([s, l, d, z])
    return out
for i, img in enumerate(imgs):
    a, b = (json.load(open(img + x)) for x in (".info", ".ginfo"))
    if a != b:
        bad = 1
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                print(img, "info", k, "qemu-img:", a.get(k), "qnbd-img:", b.get(k))
    h = nbd.NBD()
    h.add_meta_context("base:allocation")
    h.set_export_name("e%d" % i)
    h.connect_unix(sock)
    size = h.get_size()
    ref = open(img + ".ref", "rb").read()
    got = bytearray()
    while len(got) < size:
        got += h.pread(min(1 << 22, size - len(got)), len(got))
    if bytes(got) != ref:
        bad = 1
        print(img, ": bytes read over NBD differ from qemu-img convert")
    ents, off = [], 0
    def cb(ctx, o, e, err):
        global off
        if ctx != "base:allocation":
            return 0
        for j in range(0, len(e), 2):
            ents.append((off, e[j], not (e[j + 1] & 1), bool(e[j + 1] & 2)))
            off += e[j]
        return 0
    while off < size:
        h.block_status(min(1 << 30, size - off), off, cb)
    want = runs((e["start"], e["length"], e["data"], e["zero"])
                for e in json.load(open(img + ".map")))
    if runs(ents) != want:
        bad = 1
        print(img, ": base:allocation", runs(ents), "qemu-img map", want)
    h.shutdown()
sys.exit(bad)
PYEOF
}

# check_all IMG...: the engine checks, then verify_nbd.
check_all() {
  for img in "$@"; do check_engine "$img"; done
  verify_nbd "$@"
}

# verify_nbd IMG...: one qnbd serving every image (already through
# check_engine) as its own export, each verified over NBD.
verify_nbd() {
  local args=() i=0
  for img in "$@"; do args+=(--export "e$i=$img"); i=$((i + 1)); done
  start_qnbd -r "$1" "${args[@]}"
  verify_all "$SOCK" "$@" || fail "images differ from what qemu-img says"
  stop_qnbd
}

# write_pattern IMG: some data, some zeroes, some gaps.
write_pattern() {
  qemu-io -f qcow2 -c "write -P 0x11 0 100k" -c "write -P 0x22 300k 64k" \
    -c "write -z 500k 128k" -c "write -P 0x33 1M 4k" \
    -c "write -P 0x44 1500k 1k" "$1" >/dev/null
}
