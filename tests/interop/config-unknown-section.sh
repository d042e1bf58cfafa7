# A section other than [export NAME] is refused with its line.
. "$(dirname "$0")/config-common.bash"
cat >bad.conf <<CONF
[server]
port = 10809
[exports a]
CONF
rejected bad.conf "1:unknown section '[server]'" "3:unknown section '[exports a]'"
