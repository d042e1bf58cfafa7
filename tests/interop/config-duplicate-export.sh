# Two sections with one name: the second is refused, naming the first.
. "$(dirname "$0")/config-common.bash"
truncate -s 1M a.img
cat >bad.conf <<CONF
[export a]
path = $TMP/a.img
[export]
format = memory
size = 1M
[export a]
format = memory
size = 1M
[export   ]
format = memory
size = 1M
CONF
rejected bad.conf "6:export 'a' already defined at line 1" \
  "9:export '' already defined at line 3"
