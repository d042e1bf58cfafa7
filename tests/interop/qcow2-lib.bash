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

# check_qemu_map URI IMG: `qemu-img map --output=json` over qnbd's export
# agrees with qemu-img's map of the file on data and zero flags.
check_qemu_map() {
  qemu-img map -f raw --output=json "$1" >"$TMP/nbd.map"
  $PY - "$2.map" "$TMP/nbd.map" <<'PYEOF'
import json, sys
def runs(path):
    out = []
    for e in json.load(open(path)):
        if out and out[-1][2:] == [e["data"], e["zero"]]:
            out[-1][1] += e["length"]
        else:
            out.append([e["start"], e["length"], e["data"], e["zero"]])
    return out
a, b = runs(sys.argv[1]), runs(sys.argv[2])
if a != b:
    sys.exit("file: %s\nnbd:  %s" % (a, b))
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

# make_victims: base.qcow2 (v3, 64 KiB clusters, data, zeroes, a
# compressed cluster, a snapshot and a bitmap, so that every table
# exists) and ext.qcow2 (extended L2) for the corruption tests.
make_victims() {
  /usr/bin/python3 -c 'open("c.raw","wb").write(b"compress me " * 6000)'
  qemu-img convert -q -c -O qcow2 c.raw base.qcow2
  qemu-img resize -q base.qcow2 4M
  qemu-io -f qcow2 -c "write -P 0x11 1M 128k" -c "write -z 2M 64k" base.qcow2 \
    >/dev/null
  qemu-img snapshot -c snap base.qcow2
  qemu-img bitmap --add base.qcow2 bm
  qemu-io -f qcow2 -c "write -P 0x22 3M 64k" base.qcow2 >/dev/null
  qemu-img create -q -f qcow2 -o extended_l2=on ext.qcow2 1M
  qemu-io -f qcow2 -c "write -P 0x33 0 4k" ext.qcow2 >/dev/null
}

# corrupt_cases header|tables: damage each header field (refused at open
# with a clear message) or each table entry (the request fails with EIO
# and a message naming the offset, or the damage reads harmlessly), and
# run qnbd-img info, map and dump on each: never a signal or a sanitizer
# report.
corrupt_cases() {
  QIMG=$QIMG $PY - "$1" <<'PYEOF'
import os, shutil, struct, subprocess, sys

QIMG = os.environ["QIMG"]
be64 = lambda b, o: struct.unpack_from(">Q", b, o)[0]
be32 = lambda b, o: struct.unpack_from(">I", b, o)[0]
base = open("base.qcow2", "rb").read()
ext = open("ext.qcow2", "rb").read()

# Where the tables are.
l1_off = be64(base, 40)
l2_off = be64(base, 40) and be64(base, l1_off) & 0x00FFFFFFFFFFFE00
reft_off = be64(base, 48)
snap_off = be64(base, 64)
hdr_len = be32(base, 100)
exts, o = {}, hdr_len
while True:
    t, l = struct.unpack_from(">II", base, o)
    if t == 0:
        break
    exts[t] = (o, l)
    o += 8 + (l + 7) // 8 * 8
bm_ext = exts[0x23852875][0]
bm_dir = be64(base, bm_ext + 8 + 16)
bm_table = be64(base, bm_dir)
ext_l1 = be64(ext, 40)
ext_l2 = be64(ext, ext_l1) & 0x00FFFFFFFFFFFE00
# The L2 entry of the compressed cluster 0, and of the cluster at 1M.
comp_entry = l2_off
data_entry = l2_off + 16 * 8

def p64(v): return struct.pack(">Q", v)
def p32(v): return struct.pack(">I", v)
def p16(v): return struct.pack(">H", v)

# (name, source, offset, bytes, expected message or None when the damage
# may go unnoticed; "EIO" means a request must fail, not the open).
cases = [
    ("magic", base, 0, b"QFI\xfa", "bad magic"),
    ("version 1", base, 4, p32(1), "version 1"),
    ("version 4", base, 4, p32(4), "version 4"),
    ("backing offset past cluster", base, 8, p64(65530) + p32(100),
     "backing file name"),
    ("backing size too long", base, 8, p64(4096) + p32(2000),
     "backing file name"),
    ("cluster_bits 8", base, 20, p32(8), "cluster_bits"),
    ("cluster_bits 22", base, 20, p32(22), "cluster_bits"),
    ("cluster_bits 40", base, 20, p32(40), "cluster_bits"),
    ("size huge", base, 24, p64(1 << 63), "too large"),
    ("size past L1", base, 24, p64(1 << 40), "too small"),
    ("crypt AES", base, 32, p32(1), "legacy AES"),
    ("crypt LUKS", base, 32, p32(2), "LUKS"),
    ("crypt unknown", base, 32, p32(7), "unknown encryption"),
    ("l1_size huge", base, 36, p32(0x10000000), "L1 table"),
    ("l1_size zero", base, 36, p32(0), "too small"),
    ("l1 offset unaligned", base, 40, p64(l1_off + 8), "not cluster aligned"),
    ("l1 offset past eof", base, 40, p64(1 << 40), "past the end"),
    ("l1 offset zero", base, 40, p64(0), "overlaps the header"),
    ("l1 over reftable", base, 40, p64(reft_off), "overlaps"),
    ("reftable unaligned", base, 48, p64(reft_off + 512), "not cluster"),
    ("reftable past eof", base, 48, p64(1 << 44), "past the end"),
    ("reftable zero", base, 48, p64(0), "refcount table"),
    ("reftable clusters huge", base, 56, p32(0xFFFFFFFF), "limit"),
    ("reftable clusters zero", base, 56, p32(0), "no refcount table"),
    ("nb_snapshots huge", base, 60, p32(0x7FFFFFFF), "too many snapshots"),
    ("nb_snapshots past table", base, 60, p32(5000), "snapshot"),
    ("snapshots offset past eof", base, 64, p64(1 << 40), "past the end"),
    ("snapshots offset unaligned", base, 64, p64(snap_off + 4), "snapshot"),
    ("unknown incompatible bit", base, 72, p64(1 << 20), "bit 20"),
    ("data file bit, no name", base, 72, p64(4), "data file"),
    # An unknown bit named by the feature name table: the table's first
    # entry (incompatible bit 0, "dirty bit") renumbered to bit 20.
    ("named unknown bit", base,
     [(72, p64(1 << 20)), (exts[0x6803F857][0] + 9, b"\x14")], None,
     "bit 20 (dirty bit)"),
    ("compression bit, zlib", base, 72, p64(8), "compression type"),
    ("refcount_order 7", base, 96, p32(7), "refcount_order"),
    ("header_length 100", base, 100, p32(100), "header length"),
    ("header_length odd", base, 100, p32(105), "header length"),
    ("header_length huge", base, 100, p32(1 << 20), "header length"),
    ("compression type 2", base, 104, b"\x02", "compression type"),
    ("extension overruns", base, hdr_len + 4, p32(0x10000), "overruns"),
    ("bitmaps ext length", base, bm_ext + 4, p32(16), "bitmaps extension"),
    ("bitmaps dir past eof", base, bm_ext + 8 + 16, p64(1 << 40),
     "past the end"),
    ("bitmaps dir size huge", base, bm_ext + 8 + 8, p64(1 << 40),
     "directory size"),
    ("bitmap granularity", base, bm_dir + 17, b"\x40", "granularity"),
    ("bitmap table past eof", base, bm_dir, p64(1 << 40), "table offset"),
    ("bitmap type", base, bm_dir + 16, b"\x07", "bitmap type"),
    ("bitmap table entry reserved", base, bm_table, p64(0xFF << 56), None),
    ("snapshot extra huge", base, snap_off + 36, p32(0x100000), "extra data"),
    ("snapshot l1 unaligned", base, snap_off, p64(l1_off + 8), "snapshot"),
    ("L1 entry reserved bits", base, l1_off, p64(be64(base, l1_off) | 2),
     "EIO"),
    ("L1 entry unaligned", base, l1_off,
     p64(be64(base, l1_off) + 512), "EIO"),
    ("L1 entry past eof", base, l1_off, p64((1 << 40) | (1 << 63)), "EIO"),
    ("L1 entry on header", base, l1_off, p64(1 << 9), "EIO"),
    ("L2 entry reserved bits", base, data_entry,
     p64(be64(base, data_entry) | (1 << 57)), "EIO"),
    ("L2 entry unaligned", base, data_entry,
     p64(be64(base, data_entry) + 512), "EIO"),
    ("L2 entry on header", base, data_entry, p64(1 << 63 | 512 * 0), None),
    ("L2 data past eof", base, data_entry, p64((1 << 50) | (1 << 63)), None),
    ("compressed past eof", base, comp_entry,
     p64((1 << 62) | (0xFF << 54) | (1 << 48)), "EIO"),
    ("compressed garbage", base, comp_entry,
     p64((1 << 62) | (3 << 54) | reft_off), "EIO"),
    ("compressed in header", base, comp_entry, p64((1 << 62) | 100), "EIO"),
    ("refcount table entry", base, reft_off, p64(0xFFFFFFFFFFFF), None),
    ("extl2 both bits", ext, ext_l2 + 8, p64(1 | (1 << 32)), "EIO"),
    ("extl2 zero flag", ext, ext_l2, p64(be64(ext, ext_l2) | 1), "EIO"),
    ("extl2 alloc no cluster", ext, ext_l2, p64(0), "EIO"),
    ("extl2 compressed bitmap", ext, ext_l2, p64((1 << 62) | 65536), "EIO"),
]

SUBSET = sys.argv[1]
cases = [c for c in cases if (c[4] == "EIO" or c[4] is None) == (SUBSET == "tables")]
if SUBSET == "tables":
    # Seeded random damage anywhere in the metadata: any outcome but a
    # crash, a hang or a sanitizer report is acceptable.
    import random
    rnd = random.Random(20261123)
    regions = [(0, 512), (l1_off, 64), (l2_off, 1024), (reft_off, 64),
               (snap_off, 128), (bm_dir, 64), (bm_table, 16),
               (ext_l1, 16), (ext_l2, 256)]
    for n in range(24):
        start, size = rnd.choice(regions)
        src = ext if start in (ext_l1, ext_l2) else base
        off = start + rnd.randrange(size)
        data = bytes(rnd.randrange(256) for _ in range(rnd.choice((1, 2, 8))))
        cases.append(("random %d at %#x" % (n, off), src, off, data, None))
SAN = (b"AddressSanitizer", b"runtime error:", b"LeakSanitizer")


def run_case(arg):
    """Damage one copy, run qnbd-img on it; return a complaint or None."""
    i, (name, src, off, data, want) = arg
    img = "case%d.qcow2" % i
    buf = bytearray(src)
    for o, d in (off if isinstance(off, list) else [(off, data)]):
        buf[o:o + len(d)] = d
    open(img, "wb").write(buf)
    errs, codes = b"", []
    # -f qcow2: a damaged magic must not make it a raw image.
    for cmd in (["info", "-f", "qcow2", "--output=json"],
                ["map", "-f", "qcow2", "--output=json"],
                ["dump", "-f", "qcow2"]):
        try:
            r = subprocess.run([QIMG] + cmd + [img], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, timeout=60)
        except subprocess.TimeoutExpired:
            return "HANG: %s %s" % (name, cmd)
        errs += r.stderr
        codes.append(r.returncode)
        if r.returncode != 0 and cmd[0] == "info" and want not in ("EIO", None):
            break  # refused at open: the other commands open the same way
    os.unlink(img)
    msg = errs.decode(errors="replace")
    if any(c < 0 or c >= 128 for c in codes) or any(s in errs for s in SAN):
        return "CRASH: %s %s %s" % (name, codes, msg[:2000])
    if want == "EIO":
        # Opens (info works) but reading the bad range fails, naming it.
        if codes[0] != 0 or codes[2] == 0 or "offset" not in msg:
            return "NO EIO: %s %s %s" % (name, codes, msg)
    elif want is not None and (codes[0] == 0 or want not in msg):
        return "NOT REFUSED: %s %s %s" % (name, codes, msg)
    return None


from concurrent.futures import ThreadPoolExecutor
bad = 0
with ThreadPoolExecutor(4) as pool:
    for complaint in pool.map(run_case, enumerate(cases)):
        if complaint:
            print(complaint)
            bad = 1
if SUBSET == "tables":  # a truncated image
    open("trunc.qcow2", "wb").write(base[:len(base) // 2])
    r = subprocess.run([QIMG, "dump", "-f", "qcow2", "trunc.qcow2"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if r.returncode < 0 or r.returncode >= 128 or any(s in r.stderr for s in SAN):
        print("CRASH: truncated", r.stderr[:2000])
        bad = 1
print("%d corruption cases" % len(cases))
sys.exit(bad)
PYEOF
}
