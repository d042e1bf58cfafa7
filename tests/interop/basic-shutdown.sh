# Graceful shutdown under load: while a libnbd client keeps 16 writes in
# flight and nbdcopy copies into a second export in a loop, SIGTERM makes
# qnbd exit 0 within a few seconds; every write it acknowledged is in the
# file, every completed nbdcopy is, and the Unix socket file is gone (the
# TCP port closed).
. "$(dirname "$0")/../lib.sh"
require nbdcopy nbdsh # nbdsh: python3-libnbd

# The writer: 4 KiB writes cycling over 1024 blocks, each tagged with a
# sequence number, until the connection ends.  It prints "started" once
# writes are acknowledged, then at the end per block the last
# acknowledged sequence and the later ones still unanswered (either of
# which the file may hold).
cat >writer.py <<'PY'
import json, nbd, struct, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
BLOCKS, DEPTH = 1024, 16
acked = [0] * BLOCKS           # last acknowledged seq (0: never written)
pending = {}                   # cookie -> (block, seq)
seq, started = 0, False
try:
    while True:
        while len(pending) < DEPTH:
            seq += 1
            blk = seq % BLOCKS
            buf = struct.pack("<QQ", seq, blk) * 256
            pending[h.aio_pwrite(buf, blk * 4096)] = (blk, seq)
        h.poll(-1)
        for cookie in list(pending):
            if h.aio_command_completed(cookie):
                blk, s = pending.pop(cookie)
                acked[blk] = max(acked[blk], s)
        if not started and seq > 2 * BLOCKS:
            print("started", flush=True)
            started = True
except nbd.Error:
    pass
# Writes the server never answered may or may not have landed.
unanswered = {}
for cookie, (blk, s) in pending.items():
    if s > acked[blk]:
        unanswered.setdefault(blk, []).append(s)
json.dump({"acked": acked, "unanswered": unanswered, "seq": seq},
          open("writer.json", "w"))
PY

cat >verify.py <<'PY'
import json, struct
w = json.load(open("writer.json"))
data = open("disk.img", "rb").read()
assert sum(1 for a in w["acked"] if a) == len(w["acked"]), "not every block acked"
for blk, a in enumerate(w["acked"]):
    got = data[blk * 4096:(blk + 1) * 4096]
    seq, b = struct.unpack("<QQ", got[:16])
    assert got == got[:16] * 256, "block %d is torn" % blk
    ok = [a] + w["unanswered"].get(str(blk), [])
    assert b == blk and seq in ok, \
        "block %d holds seq %d, acknowledged %d (unanswered %s)" % (blk, seq, a, ok[1:])
print("writer: %d writes, all acknowledged ones present" % w["seq"])
PY

head -c 8M /dev/urandom >srcA.img
head -c 8M /dev/urandom >srcB.img

# copier URI: nbdcopy srcA, srcB, srcA... into URI, logging each one done.
copier() {
  local src=srcA.img
  while timeout 30 nbdcopy --flush "$src" "$1" 2>/dev/null; do
    echo "$src" >>copies.log
    if [ "$src" = srcA.img ]; then src=srcB.img; else src=srcA.img; fi
  done
}

run() { # run URI-FOR-disk URI-FOR-copy
  rm -f writer.json copies.log
  truncate -s 0 disk.img copy.img
  truncate -s 4M disk.img
  truncate -s 8M copy.img
  timeout 60 /usr/bin/python3 writer.py "$1" >writer.out 2>"$TMP/writer.log" &
  local wpid=$!
  _pids+=("$wpid")
  copier "$2" &
  local cpid=$!
  _pids+=("$cpid")
  for _ in $(seq 200); do
    grep -q started writer.out 2>/dev/null && [ -s copies.log ] && break
    sleep 0.1
  done
  grep -q started writer.out || fail "the writer did not get going"
  [ -s copies.log ] || fail "no nbdcopy finished before the shutdown"
  sleep 0.3

  local t0=$SECONDS rc=0
  kill -TERM "$QNBD_PID"
  for _ in $(seq 50); do kill -0 "$QNBD_PID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$QNBD_PID" 2>/dev/null && fail "qnbd still running 5 s after SIGTERM"
  wait "$QNBD_PID" || rc=$?
  [ "$rc" = 0 ] || fail "qnbd exited with $rc after SIGTERM"
  wait "$wpid" || fail "the writer failed: $(cat "$TMP/writer.log")"
  wait "$cpid" || true
  echo "qnbd stopped in $((SECONDS - t0)) s"

  /usr/bin/python3 verify.py || fail "acknowledged writes lost"
  # The last nbdcopy that finished (and flushed) is in the file, except
  # for the blocks the interrupted next one may have overwritten.
  local last
  last=$(tail -n 1 copies.log)
  /usr/bin/python3 - "$last" <<'PY' || fail "a finished nbdcopy is not in the file"
import sys
last = open(sys.argv[1], "rb").read()
other = open("srcB.img" if sys.argv[1] == "srcA.img" else "srcA.img", "rb").read()
got = open("copy.img", "rb").read()
assert len(got) == len(last)
for off in range(0, len(got), 4096):
    g = got[off:off + 4096]
    assert g in (last[off:off + 4096], other[off:off + 4096]), \
        "copy.img at %d is neither source" % off
PY
}

truncate -s 4M disk.img
truncate -s 8M copy.img
start_qnbd -x disk --export copy=copy.img disk.img
run "nbd+unix:///disk?socket=$SOCK" "nbd+unix:///copy?socket=$SOCK"
[ ! -e "$SOCK" ] || fail "the socket file $SOCK is left behind"

start_qnbd_tcp -x disk --export copy=copy.img disk.img
run "nbd://127.0.0.1:$PORT/disk" "nbd://127.0.0.1:$PORT/copy"
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  fail "port $PORT still accepts connections"
fi
