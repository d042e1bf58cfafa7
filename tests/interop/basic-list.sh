# nbdinfo --list over TCP and a Unix socket: every export given with -x
# and --export NAME=FILE is listed with its own name, size and (for the
# main export) the --description text, and each one serves its own file.
. "$(dirname "$0")/../lib.sh"
require nbdinfo nbdsh

truncate -s 3M main.img
truncate -s 1M alpha.img
truncate -s 2M beta.img
printf 'ALPHA' | dd of=alpha.img conv=notrunc status=none
printf 'BETA' | dd of=beta.img conv=notrunc status=none

# summary URI: "name size description" per export, in listed order.
summary() {
  nbdinfo --list --json "$1" | /usr/bin/python3 -c '
import json, sys
for e in json.load(sys.stdin)["exports"]:
    print(e["export-name"], e["export-size"], e.get("description", "-"))'
}

expected='main 3145728 the main disk
alpha 1048576 -
beta 2097152 -'
args=(-x main --description "the main disk" --export alpha=alpha.img
  --export beta=beta.img main.img)

check() { # check URI-BASE (the URI up to the export name) SUFFIX
  got=$(summary "$1/$2")
  [ "$got" = "$expected" ] || fail "nbdinfo --list on $1:
$got
expected:
$expected"
  for n in alpha beta; do
    word=$(nbdsh -u "$1/$n$2" -c 'print(h.pread(5, 0).rstrip(b"\0").decode())')
    [ "$word" = "${n^^}" ] || fail "export $n on $1 reads '$word'"
  done
}

start_qnbd_tcp "${args[@]}"
check "nbd://127.0.0.1:$PORT" ""
stop_qnbd

start_qnbd "${args[@]}"
check "nbd+unix://" "?socket=$SOCK"
stop_qnbd
