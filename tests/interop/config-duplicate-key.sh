# A key given twice in one export is refused at the second line.
. "$(dirname "$0")/config-common.bash"
truncate -s 1M a.img b.img
cat >bad.conf <<CONF
[export a]
path = $TMP/a.img
read-only = yes
path = $TMP/b.img
read-only = no
CONF
rejected bad.conf "4:'path' given twice" "5:'read-only' given twice"
