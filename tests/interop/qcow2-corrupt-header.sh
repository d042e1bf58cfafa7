# Corrupt and hostile qcow2 images, header side: each header field and
# header extension damaged in turn is refused at open with a clear
# message, never a crash (no signal, no sanitizer report: run it in the
# ASan+UBSan preset).  Also a missing backing file.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/qcow2-lib.bash"

make_victims
corrupt_cases header || fail "a corrupt header was not refused cleanly"
qemu-img create -q -f qcow2 -b nosuch.qcow2 -F qcow2 orphan.qcow2 1M 2>/dev/null ||
  { qemu-img create -q -f qcow2 orphan.qcow2 1M &&
    qemu-img rebase -q -u -b nosuch.qcow2 -F qcow2 orphan.qcow2; }
if "$QIMG" info orphan.qcow2 2>err; then fail "missing backing file opened"; fi
grep -q "nosuch.qcow2" err || fail "no clear message for a missing backing file"
