#!/usr/bin/env bash
# e2e: a qemu guest boots from a disk that qnbd serves -- SeaBIOS reads
# the MBR, syslinux the kernel and initramfs, all through NBD -- then
# reads and writes that disk and powers off; the host checks the image.
#
# QNBD_E2E_FORMAT=raw (the default) serves the raw disk image itself;
# QNBD_E2E_FORMAT=qcow2 serves a qcow2 overlay on a qcow2 base made from
# it (boot-qcow2.sh), and checks the overlay with `qemu-img check` and
# that the base is untouched.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
. "$here/lib/e2e.bash"
FORMAT=${QNBD_E2E_FORMAT:-raw}

e2e_require mkfs.vfat mcopy syslinux cmp
e2e_kernel

# What the guest reads (put in partition 3 by the host) and writes (to
# partition 2, from its initramfs): fresh random data on every run.
MiB=$((1 << 20))
e2e_random p3.bin "$MiB"
e2e_random pattern.bin "$MiB"
mkdir -p root/data && cp pattern.bin root/data/
e2e_initramfs initrd.gz root "virtio_pci virtio_blk"
e2e_boot_disk disk.img initrd.gz "$E2E_APPEND \
qnbd.scenario=boot qnbd.p3len=$MiB qnbd.p3sha=$(sha256sum <p3.bin | cut -d' ' -f1)"
dd if=p3.bin of=disk.img bs=64k seek=$((E2E_P3_OFF / 65536)) conv=notrunc status=none

# expected.img: the disk as it must be after the guest has run.
cp --sparse=always disk.img orig.img
cp --sparse=always disk.img expected.img
dd if=pattern.bin of=expected.img bs=64k seek=$((E2E_P2_OFF / 65536)) \
  conv=notrunc status=none

case $FORMAT in
raw)
  served=disk.img
  ;;
qcow2)
  qemu-img convert -f raw -O qcow2 disk.img base.qcow2
  qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 overlay.qcow2
  base_sum=$(sha256sum <base.qcow2)
  served=overlay.qcow2
  ;;
*) fail "QNBD_E2E_FORMAT=$FORMAT: raw or qcow2" ;;
esac

start_qnbd_tcp -f "$FORMAT" "$served"
# reboot-timeout: if the disk does not boot, SeaBIOS reboots, and
# -no-reboot turns that into a quick exit instead of a hang.
e2e_qemu boot -boot reboot-timeout=1000 \
  -drive "file=nbd://127.0.0.1:$PORT,format=raw,if=virtio"
stop_qnbd

e2e_expect boot boot
tr -d '\r' <"$TMP/boot-serial.log" | grep -q '^SYSLINUX ' ||
  fail "no SYSLINUX banner on the console: the guest was not booted by syslinux"

case $FORMAT in
raw)
  cmp expected.img disk.img || fail "the served image is not the expected one"
  ;;
qcow2)
  qemu-img check -f qcow2 overlay.qcow2 >check.log 2>&1 ||
    { cat check.log; fail "qemu-img check overlay.qcow2"; }
  [ "$(sha256sum <base.qcow2)" = "$base_sum" ] || fail "the backing file changed"
  qemu-img compare -q -f raw -F qcow2 orig.img base.qcow2 ||
    fail "the base no longer reads as the original disk"
  qemu-img compare -f raw -F qcow2 expected.img overlay.qcow2 ||
    fail "the overlay does not read as the expected disk"
  ;;
esac
echo "boot ($FORMAT): ok"
