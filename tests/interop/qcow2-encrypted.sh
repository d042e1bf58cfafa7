# Encrypted qcow2 images (LUKS and legacy AES) are refused with a clear
# message by qnbd-img and by qnbd: never is ciphertext served as data.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/qcow2-lib.bash"

sec=(--object secret,id=sec0,data=123456)
qemu-img create -q "${sec[@]}" -f qcow2 \
  -o encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10 \
  luks.qcow2 1M
qemu-img create -q "${sec[@]}" -f qcow2 \
  -o encrypt.format=aes,encrypt.key-secret=sec0 aes.qcow2 1M
for f in luks aes; do
  qemu-io "${sec[@]}" --image-opts -c "write -P 0x5a 0 64k" \
    "driver=qcow2,file.filename=$f.qcow2,encrypt.key-secret=sec0" >/dev/null
done

for f in luks aes; do
  want=$([ $f = luks ] && echo LUKS || echo "legacy AES")
  for cmd in info map dump; do
    if "$QIMG" $cmd $f.qcow2 >out 2>err; then
      fail "qnbd-img $cmd opened the $f image"
    fi
    grep -q "encrypted images ($want) are not supported" err ||
      { cat err; fail "qnbd-img $cmd: no clear message for $f"; }
    [ ! -s out ] || [ $cmd = map ] || fail "qnbd-img $cmd printed data"
  done
  # qnbd refuses to start on it.
  if "$QNBD" -U "$TMP/s.sock" -r $f.qcow2 >qnbd.out 2>&1; then
    fail "qnbd served the $f image"
  fi
  grep -q "encrypted images ($want) are not supported" qnbd.out ||
    { cat qnbd.out; fail "qnbd: no clear message for $f"; }
done
