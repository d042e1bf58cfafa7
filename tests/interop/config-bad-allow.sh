# Allowed-client lists: every item must be an address, ADDR/BITS with
# BITS within the family, or "unix".
. "$(dirname "$0")/config-common.bash"
cat >bad.conf <<CONF
[export m]
format = memory
size = 1M
allow = 127.0.0.1, ::1, 10.0.0.0/8, unix
allow = 300.1.1.1
allow = 10.0.0.0/33, fe80::/129, example.com
allow = 192.0.2.0/-1
allow = ,
CONF
rejected bad.conf "5:'300.1.1.1'" "6:'10.0.0.0/33'" "6:'fe80::/129'" \
  "6:'example.com'" "7:'192.0.2.0/-1'" "8:allow: empty list"
