# Exports whose keys do not make one source: each reported at its
# section's line.
. "$(dirname "$0")/config-common.bash"
truncate -s 1M a.img
cat >bad.conf <<CONF
[export nothing]
description = no source
[export both]
plugin = memory
path = $TMP/a.img
[export params]
path = $TMP/a.img
param = size=1M
[export memory-path]
format = memory
path = $TMP/a.img
[export memory-nosize]
format = memory
[export size-raw]
path = $TMP/a.img
size = 1M
[export snap-raw]
path = $TMP/a.img
format = raw
snapshot = one
CONF
rejected bad.conf "1:export 'nothing': no 'path'" \
  "3:export 'both': 'plugin' excludes" "6:export 'params': 'param' needs" \
  "9:export 'memory-path': format memory takes 'size'" \
  "12:export 'memory-nosize': format memory takes 'size'" \
  "14:export 'size-raw': 'size' is only for format memory" \
  "17:export 'snap-raw': 'snapshot' needs a qcow2 image"
