# The sh plugin logs every callback it is asked for: qnbd drives a
# plugin through the same sequence as nbdkit (nbdkit-plugin(3)
# "Callback lifecycle"): load, config, config_complete, thread_model,
# get_ready, after_fork, preconnect, default_export, open, the can_*
# family in nbdkit's order, data calls, close, unload -- read-only and
# writable, and a failing config stops before get_ready.
. "$(dirname "$0")/../lib.sh"
. "$QNBD_TESTS/plugins/compare.sh"
require nbdkit nbdsh

cat >plugin.sh <<'SH'
#!/bin/bash
echo "$1" >>"$LIFECYCLE_LOG"
case "$1" in
  config) [ "$2" = mode ] || { echo "unknown key $2" >&2; exit 1; } ;;
  get_size) echo 1M ;;
  pread) dd if=/dev/zero count=$3 iflag=count_bytes status=none ;;
  pwrite) cat >/dev/null ;;
  can_write|can_flush|can_trim|can_zero) [ "$MODE" = rw ] || exit 3 ;;
  flush|trim|zero) ;;
  open) echo handle ;;
  *) exit 2 ;;
esac
SH
chmod +x plugin.sh

for mode in ro rw; do
  export MODE=$mode
  client='h.pread(512, 0)'
  [ $mode = rw ] && client='h.pwrite(b"x" * 512, 0); h.zero(512, 0); h.flush()'
  LIFECYCLE_LOG=$TMP/nk-$mode.log start_nbdkit sh ./plugin.sh mode=1
  LIFECYCLE_LOG=$TMP/q-$mode.log start_qnbd --plugin sh ./plugin.sh mode=1
  nbdsh -u "$NK_URI" -c "$client"
  nbdsh -u "$URI" -c "$client"
  stop_qnbd
  stop_nbdkit
  diff -u nk-$mode.log q-$mode.log || fail "$mode: callback sequence differs"
  grep -q get_ready q-$mode.log && grep -q close q-$mode.log ||
    fail "$mode: $(cat q-$mode.log)"
done

# A refused parameter: nothing after config; qnbd exits non-zero.
rc=0
LIFECYCLE_LOG=$TMP/bad.log "$QNBD" -U "$TMP/never.sock" --plugin sh \
  ./plugin.sh bogus=1 >bad.out 2>&1 || rc=$?
[ $rc != 0 ] || fail "a refused parameter did not stop qnbd"
grep -q "unknown key bogus" bad.out || fail "no plugin message: $(cat bad.out)"
! grep -q -e config_complete -e get_ready bad.log ||
  fail "callbacks after a failed config: $(cat bad.log)"
