# Lines that are neither "[export NAME]" nor "key = value" are refused
# with FILE:LINE, and every such line is reported (not just the first).
. "$(dirname "$0")/config-common.bash"
truncate -s 1M a.img
cat >bad.conf <<CONF
# a comment
[export a]
path = $TMP/a.img
just some words
 = value without a key
[export b
CONF
rejected bad.conf "4:expected 'key = value'" "5:missing key before '='" \
  "6:must end with ']'"
