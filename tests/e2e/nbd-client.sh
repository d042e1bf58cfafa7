#!/usr/bin/env bash
# e2e: the Linux kernel's NBD client, in a qemu guest, attaches an export
# of qnbd on the host with nbd-client, makes ext4 on /dev/nbd0, writes
# files, unmounts, runs fsck and disconnects; the host checks the image
# and reads the files out of it; a second guest attaches again and
# checks every file.
#
# The guest reaches the host's loopback only through a guestfwd rule of
# a restrict=on user network: 10.0.2.100:10809 runs `socat - TCP:...`
# for each connection, so nbd-client -C N can open several.
# QNBD_E2E_CONNS=N (default 1) sets N; QNBD_E2E_FORMAT=raw|qcow2 (default
# raw) the format of the served image.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
. "$here/lib/e2e.bash"
FORMAT=${QNBD_E2E_FORMAT:-raw}
CONNS=${QNBD_E2E_CONNS:-1}

e2e_require socat debugfs e2fsck mke2fs diff
e2e_kernel

# The files the guest writes: random data, small text files, an empty
# file, nested folders.  manifest is their sha256sum list.
tree=root/data/tree
mkdir -p "$tree/dir/sub" root/etc
e2e_random "$tree/pattern.bin" $((2 << 20))
for i in $(seq 20); do echo "qnbd e2e file $i $RANDOM" >"$tree/dir/file-$i"; done
e2e_random "$tree/dir/sub/odd-size.bin" 12345
: >"$tree/empty"
(cd "$tree" && find . -type f | sort | xargs sha256sum) >root/data/manifest
cp /etc/mke2fs.conf root/etc/
e2e_initramfs initrd.gz root "virtio_pci virtio_net nbd crc32c_generic ext4" \
  /usr/sbin/nbd-client /usr/sbin/mke2fs /usr/sbin/e2fsck

case $FORMAT in
raw)
  img=disk.img
  truncate -s 64M "$img"
  ;;
qcow2)
  img=disk.qcow2
  qemu-img create -q -f qcow2 "$img" 64M
  ;;
*) fail "QNBD_E2E_FORMAT=$FORMAT: raw or qcow2" ;;
esac

# guest NAME SCENARIO: one guest run against a fresh qnbd on $img.  The
# forward counts the connections it carries in NAME.conns.
guest() {
  local fwd
  start_qnbd_tcp -f "$FORMAT" "$img"
  fwd="sh -c 'echo >>$TMP/$1.conns; exec socat - TCP:127.0.0.1:$PORT'"
  e2e_qemu "$1" -kernel "$KERNEL" -initrd initrd.gz \
    -append "$E2E_APPEND qnbd.scenario=$2 qnbd.conns=$CONNS" \
    -netdev "user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:10809-cmd:$fwd" \
    -device virtio-net-pci,netdev=n0
  stop_qnbd
  e2e_expect "$1" "$2"
  [ "$(wc -l <"$TMP/$1.conns")" -eq "$CONNS" ] ||
    fail "guest $1 made $(wc -l <"$TMP/$1.conns") connections, not $CONNS"
}

# host_check: the image is a clean ext4 holding exactly the files.
host_check() {
  local raw=$img
  if [ "$FORMAT" = qcow2 ]; then
    qemu-img check -f qcow2 "$img" >check.log 2>&1 ||
      { cat check.log; fail "qemu-img check $img"; }
    raw=flat.img
    qemu-img convert -f qcow2 -O raw "$img" "$raw"
  fi
  e2fsck -f -n "$raw" >fsck.log 2>&1 || { cat fsck.log; fail "e2fsck on the host"; }
  rm -rf out && mkdir -p out/dir/sub
  sed 's|^[0-9a-f]*  \./\(.*\)|dump /\1 out/\1|' root/data/manifest >dump.cmds
  debugfs -f dump.cmds "$raw" >debugfs.log 2>&1 || { cat debugfs.log; fail "debugfs"; }
  diff -r "$tree" out || fail "the files in the image differ from what was written"
}

guest write attach-write
host_check
guest read attach-read
host_check
cat "$TMP/write-result.txt" "$TMP/read-result.txt" | tr -d '\r' | grep '^QNBD-E2E'
echo "nbd-client (-C $CONNS, $FORMAT): ok"
