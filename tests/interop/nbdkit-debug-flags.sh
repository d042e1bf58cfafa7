# -D NAME.FLAG=N sets the plugin's NAME_debug_FLAG before load
# (nbdkit-plugin(3) "Debug Flags"): data's AST dump appears only with
# -D data.AST=1, and a flag for another plugin is reported unused.
. "$(dirname "$0")/../lib.sh"
. "$QNBD_TESTS/plugins/compare.sh"

start_qnbd -v -D data.AST=1 -D other.flag=1 --plugin data "1 2 3"
stop_qnbd
grep -q "BEGIN AST" qnbd.log || fail "-D data.AST=1 had no effect"
grep -q "debug flag -D other.flag was not used" qnbd.log ||
  fail "unused -D flag not reported"
rm qnbd.log
start_qnbd -v --plugin data "1 2 3"
stop_qnbd
! grep -q "BEGIN AST" qnbd.log || fail "AST dumped without -D"
