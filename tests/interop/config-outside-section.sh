# Keys before the first [export NAME] belong to nothing: refused.
. "$(dirname "$0")/config-common.bash"
truncate -s 1M a.img
cat >bad.conf <<CONF

path = $TMP/a.img
[export a]
path = $TMP/a.img
CONF
rejected bad.conf "2:'path' outside an [export NAME] section"
