# One nbdkit plugin cannot serve two exports (plugins keep global
# state): the second use is refused, naming the first.
. "$(dirname "$0")/config-common.bash"
cat >bad.conf <<CONF
[export one]
plugin = memory
param = size=1M
[export two]
plugin = memory
param = size=2M
CONF
rejected bad.conf "4:plugin 'memory' is already used by export 'one' (line 1)"
