# A plugin that breaks the rules (tests/plugins/misbehave.c) never
# takes qnbd down: invalid sizes, block sizes, thread models and
# extents are refused with a message, errors map as nbdkit maps them
# (errno when errno_is_preserved, else EIO; bad extents EINVAL, as
# nbdkit answers them), and a zero failing with
# ENOTSUP falls back to writing zeroes unless the client asked for a
# fast zero.
. "$(dirname "$0")/../lib.sh"
. "$QNBD_TESTS/plugins/compare.sh"
require nbdsh

so=$PLUGINS/nbdkit-misbehave-plugin.so

run() { # MODE PYTHON EXPECTED LOG-PATTERN
  rm -f qnbd.log
  start_qnbd --plugin "$so" "$1"
  got=$(client_errno "$URI" "$2" 2>/dev/null) || got=CONNECT-FAILED
  [ "$got" = "$3" ] || fail "mode=$1: got $got, expected $3"
  kill -0 "$QNBD_PID" || fail "mode=$1: qnbd died"
  [ -z "$4" ] || grep -q -- "$4" qnbd.log || fail "mode=$1: no '$4' in log"
  stop_qnbd
}

run open 'pass' CONNECT-FAILED "open refused by mode=open"
run size 'pass' CONNECT-FAILED "get_size returned invalid size -5"
run block-size 'pass' CONNECT-FAILED "block_size returned invalid sizes 3/"
run errno 'h.pread(512, 0)' ENOSPC ""
run errno 'h.pread(512, 4096)' OK ""
run eio 'h.pread(512, 0)' EIO ""
run no-extent 'h.block_status(4096, 0, lambda *a: 0)' EINVAL \
  "must return at least one extent"
run gap-extent 'h.block_status(4096, 0, lambda *a: 0)' EINVAL \
  "first extent must not be > start"
run zero-notsup '
h.pwrite(b"\xff" * 8192, 0)
h.zero(4096, 0)
assert h.pread(8192, 0) == bytes(4096) + b"\xff" * 4096' OK ""
run zero-notsup 'h.zero(4096, 0, nbd.CMD_FLAG_FAST_ZERO)' ENOTSUP ""

rc=0
"$QNBD" -U "$TMP/never.sock" --plugin "$so" thread-model >out 2>&1 || rc=$?
[ $rc != 0 ] && grep -q "invalid model 9" out ||
  fail "thread_model 9: rc $rc, $(cat out)"
