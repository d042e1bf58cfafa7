# A well-formed file whose image cannot be opened: the export's line is
# named and qnbd does not start.
. "$(dirname "$0")/config-common.bash"
truncate -s 1M a.img
cat >bad.conf <<CONF
[export a]
path = $TMP/a.img

[export gone]
path = $TMP/does-not-exist.img
CONF
rejected bad.conf "4:export 'gone' cannot be opened"
