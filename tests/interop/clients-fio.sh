# fio's nbd engine, four jobs each on its own connection and its own
# 2 MiB region: random writes verified with crc32c through the export,
# then verified again straight from the file.  TCP and Unix.
. "$(dirname "$0")/../lib.sh"
require fio
fio --enghelp=nbd 2>/dev/null | grep -q uri || skip "fio without the nbd engine"

cat >job.fio <<'JOB'
[global]
rw=randwrite
bs=4k
size=2M
offset_increment=2M
numjobs=4
iodepth=8
verify=crc32c
verify_fatal=1
do_verify=1
group_reporting=0

[region]
JOB

# jobs_ok JSON: every job finished with error 0 and wrote its 2 MiB.
jobs_ok() {
  /usr/bin/python3 - "$1" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
jobs = json.loads(text[text.index("{"):])["jobs"]
assert len(jobs) == 4, len(jobs)
for j in jobs:
    assert j["error"] == 0, j
    assert j["write"]["io_bytes"] == 2 << 20, j["write"]["io_bytes"]
    assert j["read"]["io_bytes"] == 2 << 20, j["read"]["io_bytes"]
PY
}

check() { # check URI
  fio --output-format=json --output="$TMP/fio.json" \
    --ioengine=nbd --uri="$1" job.fio >"$TMP/fio.log" 2>&1 ||
    fail "fio on $1: $(cat "$TMP/fio.log" "$TMP/fio.json")"
  jobs_ok "$TMP/fio.json" || fail "fio on $1: $(cat "$TMP/fio.json")"
  ! grep -qi 'verify' "$TMP/fio.log" || fail "fio on $1: $(cat "$TMP/fio.log")"
  # The same seeds again, reading the file itself: what qnbd
  # acknowledged is in the file.
  fio --output-format=json --output="$TMP/file.json" --verify_only \
    --ioengine=psync --filename=disk.img job.fio >"$TMP/fio.log" 2>&1 ||
    fail "fio --verify_only on the file after $1: $(cat "$TMP/fio.log")"
  /usr/bin/python3 -c '
import json, sys
t = open(sys.argv[1]).read()
jobs = json.loads(t[t.index("{"):])["jobs"]
assert len(jobs) == 4 and all(j["error"] == 0 for j in jobs)
assert all(j["read"]["io_bytes"] == 2 << 20 for j in jobs)' "$TMP/file.json" ||
    fail "verify_only on the file: $(cat "$TMP/file.json")"
}

truncate -s 8M disk.img
start_qnbd_tcp disk.img
check "$URI/"
stop_qnbd

truncate -s 0 disk.img
truncate -s 8M disk.img
start_qnbd disk.img
check "$URI"
stop_qnbd
