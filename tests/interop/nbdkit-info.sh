# nbdkit's info plugin reflects the connection back to the client:
# mode=exportname shows nbdkit_export_name(), mode=address shows
# nbdkit_peer_name() (over Unix as under nbdkit; over TCP the client).
. "$(dirname "$0")/../lib.sh"
. "$QNBD_TESTS/plugins/compare.sh"
require nbdkit nbdsh

text() { # URI: the export's bytes up to the first NUL
  nbdsh -u "$1" -c 'import sys; sys.stdout.write(h.pread(h.get_size(), 0).split(b"\0")[0].decode())'
}

serve_both info mode=exportname
got=$(text "nbd+unix:///hello-qnbd?socket=$SOCK")
[ "$got" = hello-qnbd ] || fail "info exportname: '$got'"
[ "$got" = "$(text "nbd+unix:///hello-qnbd?socket=$NK_SOCK")" ] ||
  fail "info exportname differs from nbdkit"
stop_qnbd
stop_nbdkit

serve_both info mode=address
got=$(text "$URI")
[ "$got" = "$(text "$NK_URI")" ] || fail "info address over Unix: '$got'"
stop_qnbd

# Over TCP the peer is the client's address.
start_qnbd_tcp --plugin info mode=address
got=$(text "$URI")
case $got in 127.0.0.1:[0-9]*) ;; *) fail "info address over TCP: '$got'" ;; esac
