# nbd-client -l (NBD_OPT_LIST, no kernel driver needed) over TCP and a
# Unix socket prints every export name, with the description if any.
. "$(dirname "$0")/../lib.sh"
PATH=$PATH:/usr/sbin:/sbin
require nbd-client

truncate -s 1M main.img a.img b.img
args=(-x main --description "the main disk" --export alpha=a.img
  --export beta=b.img main.img)
expected='main: the main disk
alpha
beta'

# listed CMD...: the export lines nbd-client prints (after "Negotiation").
listed() { "$@" 2>&1 | grep -v '^Negotiation' || true; }

start_qnbd_tcp "${args[@]}"
got=$(listed nbd-client -l 127.0.0.1 "$PORT")
[ "$got" = "$expected" ] || fail "nbd-client -l 127.0.0.1 $PORT:
$got"
got=$(listed nbd-client -l 127.0.0.1 -p "$PORT")
[ "$got" = "$expected" ] || fail "nbd-client -l 127.0.0.1 -p $PORT:
$got"
stop_qnbd

start_qnbd "${args[@]}"
got=$(listed nbd-client -l -u "$SOCK")
[ "$got" = "$expected" ] || fail "nbd-client -l -u $SOCK:
$got"
stop_qnbd
