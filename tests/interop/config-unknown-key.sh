# A misspelt key is refused with its line (not silently ignored).
. "$(dirname "$0")/config-common.bash"
truncate -s 1M a.img
cat >bad.conf <<CONF
[export a]
path = $TMP/a.img
readonly = yes
read_only = yes
CONF
rejected bad.conf "4:unknown key 'read_only'"
