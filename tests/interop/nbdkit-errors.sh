# Errors from plugins reach the client as the same errno under qnbd as
# under nbdkit: full's writes fail with ENOSPC, and eval/sh scripts that
# print an error word (EPERM, EIO, ENOMEM, EINVAL, ENOSPC, ESHUTDOWN)
# on stderr fail the request with that errno (nbdkit-sh-plugin(3)).
. "$(dirname "$0")/../lib.sh"
. "$QNBD_TESTS/plugins/compare.sh"
require nbdkit nbdsh

words="EPERM EIO ENOMEM EINVAL ENOSPC ESHUTDOWN"
# The request at offset 512*i fails with the i-th word.
reads='
for i in range(6):
    try:
        h.pread(512, 512 * i)
        print("OK")
    except nbd.Error as ex:
        print(errno.errorcode.get(ex.errno, ex.errno))'

errnos() {
  "$NBD_PY" -c "import errno, nbd, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
$reads" "$1" | tr '\n' ' ' | sed 's/ $//'
}

# full: every write fails with ENOSPC, reads are zeroes.
serve_both full size=1M
for uri in "$NK_URI" "$URI"; do
  got=$(client_errno "$uri" 'h.pwrite(b"x" * 512, 0)')
  [ "$got" = ENOSPC ] || fail "full: write gave $got"
done
got=$(client_errno "$URI" 'assert h.pread(512, 0) == bytes(512)')
[ "$got" = OK ] || fail "full: read gave $got"
stop_qnbd
stop_nbdkit

# eval: one shell snippet per method.
pread='o=$4; set -- $words; shift $((o / 512)); echo "$1 injected by the test" >&2; exit 1'
pread=${pread/\$words/$words}
serve_both eval get_size='echo 4096' pread="$pread"
nk=$(errnos "$NK_URI")
q=$(errnos "$URI")
[ "$nk" = "$words" ] || fail "eval under nbdkit: $nk"
[ "$q" = "$nk" ] || fail "eval under qnbd: '$q', nbdkit: '$nk'"
stop_qnbd
stop_nbdkit

# sh: the same as a script file.
cat >errors.sh <<SH
#!/bin/bash
case "\$1" in
  get_size) echo 4096 ;;
  pread) $pread ;;
  *) exit 2 ;;
esac
SH
chmod +x errors.sh
serve_both sh ./errors.sh
q=$(errnos "$URI")
[ "$q" = "$(errnos "$NK_URI")" ] || fail "sh: qnbd gave '$q'"
[ "$q" = "$words" ] || fail "sh: $q"
