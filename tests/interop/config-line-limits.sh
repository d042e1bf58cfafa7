# Lines over 4096 bytes and lines with NUL bytes are refused with
# their line numbers; a long name is refused too.
. "$(dirname "$0")/config-common.bash"
truncate -s 1M a.img
{
  echo "[export a]"
  echo "path = $TMP/a.img"
  printf 'description = %05000d\n' 0
  printf 'description = x\0y\n'
  printf '[export %04097d]\n' 0
} >bad.conf
rejected bad.conf "3:line longer than 4096" "4:NUL byte" "5:line longer"
