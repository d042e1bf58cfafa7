# Values that do not parse: format, booleans, sizes, empty values.
. "$(dirname "$0")/config-common.bash"
truncate -s 1M a.img
cat >bad.conf <<CONF
[export a]
path = $TMP/a.img
format = vhd
read-only = maybe
cache-size = 12Q
snapshot =
[export m]
format = memory
size = 0
CONF
rejected bad.conf "3:unknown format 'vhd'" "4:expected yes or no, got 'maybe'" \
  "5:invalid size '12Q'" "6:'snapshot' needs a value" "9:invalid size '0'"
