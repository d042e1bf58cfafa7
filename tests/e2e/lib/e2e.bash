# Host side of the end-to-end tests: the cached Debian kernel, the guest
# initramfs and boot-disk builders, and the qemu runner that reads the
# guest's verdict off a serial port.
#
# Source after tests/lib.sh.  The guest side is lib/init (busybox sh).
# Nothing here needs root: disks are built in files with mtools and
# syslinux's mtools installer, never with loop mounts.

E2E_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The kernel .deb and what is unpacked from it, shared by all e2e tests
# of one build tree (and by concurrent ones: see _e2e_lock).
E2E_CACHE=${QNBD_E2E_CACHE:-$QNBD_BUILD/e2e-cache}
# Hard limit on one guest run (a guest takes 10-30 s here, more on a
# loaded machine); two of them must fit in ctest's 600 s per test.
E2E_QEMU_TIMEOUT=${QNBD_E2E_QEMU_TIMEOUT:-240}
# The guest kernel's command line before the scenario's parameters.
# no_timer_check: on a loaded host, TCG can be too slow for the kernel's
# check that the timer interrupt reaches the IO-APIC, which then panics
# ("IO-APIC + timer doesn't work!").
E2E_APPEND="console=ttyS0 quiet panic=-1 no_timer_check"
# Every kernel module any scenario loads, with the dependencies that
# Debian's 6.1 kernel has for them (missing ones would be found anyway).
E2E_MODULES="virtio_pci virtio_blk virtio_net nbd ext4 crc32c_generic
  virtio virtio_ring virtio_pci_modern_dev virtio_pci_legacy_dev
  net_failover failover jbd2 mbcache crc16"

# e2e_require: the host tools every e2e test needs (exit 77 without).
e2e_require() {
  require qemu-system-x86_64 qemu-img apt-get apt-cache dpkg-deb \
    modinfo cpio gzip flock sha256sum "$@"
  [ -x /bin/busybox ] || skip "busybox (package busybox-static)"
  # The guest has no libc: its busybox must be the static build.
  if ldd /bin/busybox >/dev/null 2>&1; then
    skip "a static /bin/busybox (package busybox-static)"
  fi
}

# _e2e_lock: serialise cache updates between tests run by ctest -j.
_e2e_lock() {
  mkdir -p "$E2E_CACHE"
  exec 8>"$E2E_CACHE/lock"
  flock -w 600 8 || fail "could not lock $E2E_CACHE"
}
_e2e_unlock() { flock -u 8; exec 8>&-; }

# e2e_kernel: sets KERNEL (a vmlinuz) and KMODS (a folder of *.ko files
# named by module name, with deps.txt "name: dep dep...") from Debian's
# current linux-image-amd64, downloaded once into $E2E_CACHE and
# unpacked there (not installed).  Stale apt lists (no such package, or
# a version the archive no longer has) get one `apt-get update`.
e2e_kernel() {
  local pkg deb dir
  pkg=$(_e2e_kernel_pkg)
  if [ -z "$pkg" ]; then
    _e2e_lock
    pkg=$(_e2e_kernel_pkg)
    [ -n "$pkg" ] || ! _e2e_apt_update || pkg=$(_e2e_kernel_pkg)
    _e2e_unlock
  fi
  [ -n "$pkg" ] || skip "apt knows no linux-image-amd64 (run apt-get update)"
  dir=$E2E_CACHE/$pkg
  KERNEL=$dir/vmlinuz
  KMODS=$dir/modules
  [ -f "$dir/ready" ] && return 0
  _e2e_lock
  if [ ! -f "$dir/ready" ]; then
    deb=$(ls "$E2E_CACHE/${pkg}"_*.deb 2>/dev/null | tail -n 1 || true)
    if [ -z "$deb" ]; then
      echo "e2e: downloading $pkg into $E2E_CACHE" >&2
      _e2e_download "$pkg" || { _e2e_apt_update && _e2e_download "$pkg"; } ||
        fail "apt-get download $pkg"
      deb=$(ls "$E2E_CACHE/${pkg}"_*.deb | tail -n 1)
    fi
    # Kernels of earlier runs: superseded by this one.
    find "$E2E_CACHE" -mindepth 1 -maxdepth 1 -name 'linux-image-*' \
      ! -name "$pkg" ! -name "${pkg}_*" -exec rm -rf {} +
    rm -rf "$dir" && mkdir -p "$KMODS"
    _e2e_unpack "$deb" $E2E_MODULES
    touch "$dir/ready"
  fi
  _e2e_unlock
}
_e2e_kernel_pkg() {
  apt-cache depends linux-image-amd64 2>/dev/null |
    awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
}
_e2e_download() {
  (cd "$E2E_CACHE" && apt-get download -q -o APT::Sandbox::User=root "$1")
}
_e2e_apt_update() {
  [ "$(id -u)" = 0 ] || return 1
  echo "e2e: apt-get update" >&2
  apt-get update -q >"$TMP/apt-update.txt" 2>&1 || { cat "$TMP/apt-update.txt"; return 1; }
}

# _e2e_unpack DEB NAME...: copy the kernel, the named modules and all
# they depend on (modinfo's depends) out of DEB into $KERNEL and $KMODS.
# Each level of dependencies not named costs one more pass over the
# archive (several seconds of xz), hence the full list in E2E_MODULES.
_e2e_unpack() {
  local deb=$1 tree=$E2E_CACHE/unpack.$$ name f dep
  local -a want pats=("./boot/vmlinuz-*")
  shift
  want=("$@")
  local asked=" $* "
  rm -rf "$tree"
  while [ "${#want[@]}" -gt 0 ]; do
    # Files spell some names with '-' where the module name has '_'.
    for name in "${want[@]}"; do pats+=("./lib/modules/*/${name//_/[_-]}.ko"); done
    mkdir -p "$tree"
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tree" --wildcards "${pats[@]}" ||
      fail "$deb lacks some of: ${pats[*]}"
    pats=()
    want=()
    while IFS= read -r f; do
      name=$(basename "$f" .ko)
      name=${name//-/_}
      [ -f "$KMODS/$name.ko" ] && continue
      cp "$f" "$KMODS/$name.ko"
      dep=$(modinfo -F depends "$f" | tr ',' ' ')
      echo "$name: $dep" >>"$KMODS/deps.txt"
      for d in $dep; do
        [[ $asked == *" $d "* ]] && continue
        asked+="$d "
        want+=("$d")
      done
    done < <(find "$tree" -name '*.ko')
  done
  mv "$tree"/boot/vmlinuz-* "$KERNEL" || fail "no kernel in $deb"
  rm -rf "$tree"
}

# e2e_module_order NAME...: sets MODORDER to the modules to insmod,
# dependencies first.
e2e_module_order() {
  MODORDER=()
  local m
  for m in "$@"; do _e2e_visit "$m"; done
}
_e2e_visit() {
  local m=$1 d
  [[ " ${MODORDER[*]} " == *" $m "* ]] && return 0
  [ -f "$KMODS/$m.ko" ] || fail "module $m is not in $KMODS"
  for d in $(awk -v m="$m:" '$1 == m { $1 = ""; print }' "$KMODS/deps.txt"); do
    _e2e_visit "$d"
  done
  MODORDER+=("$m")
}

# e2e_initramfs OUT ROOT MODULES BIN...: a gzipped cpio made of ROOT
# (files the test put there, e.g. data/), lib/init as /init, a static
# busybox, the named kernel modules (with their dependencies, in load
# order in /etc/modules) and each BIN with the shared libraries ldd
# lists for it.
e2e_initramfs() {
  local out=$1 root=$2 mods=$3 b lib m
  shift 3
  mkdir -p "$root"/{bin,sbin,dev,proc,sys,mnt,tmp,etc,lib/modules}
  cp /bin/busybox "$root/bin/busybox"
  cp "$E2E_LIB/init" "$root/init"
  chmod 755 "$root/init"
  e2e_module_order $mods
  for m in "${MODORDER[@]}"; do
    cp "$KMODS/$m.ko" "$root/lib/modules/"
    echo "$m" >>"$root/etc/modules"
  done
  for b in "$@"; do
    mkdir -p "$root$(dirname "$b")"
    cp -L "$b" "$root$b"
    for lib in $(ldd "$b" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
      [ -e "$root$lib" ] && continue
      mkdir -p "$root$(dirname "$lib")"
      cp -L "$lib" "$root$lib"
    done
  done
  (cd "$root" && find . | cpio -o -H newc -R 0:0 --quiet | gzip -1) >"$out"
}

# e2e_qemu NAME QEMU-ARGS...: run one guest to its power-off under a
# hard timeout.  The serial console goes to $TMP/NAME-serial.log, the
# second serial port (the guest's QNBD-E2E lines only) to
# $TMP/NAME-result.txt, SeaBIOS's debug port to $TMP/NAME-bios.log,
# qemu's own messages to $TMP/NAME-qemu.log (the *.log files are shown
# when the test fails).  Fails if qemu fails or times out.
e2e_qemu() {
  local name=$1 rc=0 t0=$SECONDS
  shift
  timeout -k 10 "$E2E_QEMU_TIMEOUT" qemu-system-x86_64 \
    -nodefaults -machine pc -cpu max -m 512 -display none -no-reboot \
    -serial "file:$TMP/$name-serial.log" -serial "file:$TMP/$name-result.txt" \
    -chardev "file,id=bios,path=$TMP/$name-bios.log" \
    -device isa-debugcon,iobase=0x402,chardev=bios \
    "$@" >"$TMP/$name-qemu.log" 2>&1 || rc=$?
  echo "e2e: guest $name ran $((SECONDS - t0)) s (qemu exit $rc)" >&2
  [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] ||
    fail "guest $name did not power off within ${E2E_QEMU_TIMEOUT} s"
  [ "$rc" -eq 0 ] || fail "qemu-system-x86_64 ($name) exited with $rc"
}

# e2e_expect NAME SCENARIO: the guest printed its PASS line (and no FAIL).
e2e_expect() {
  local log=$TMP/$1-result.txt
  [ -f "$log" ] || fail "guest $1 left no $log"
  if tr -d '\r' <"$log" | grep -q '^QNBD-E2E: FAIL'; then
    fail "guest $1: $(tr -d '\r' <"$log" | grep '^QNBD-E2E: FAIL' | head -n 1)"
  fi
  tr -d '\r' <"$log" | grep -qx "QNBD-E2E: PASS $2" ||
    fail "guest $1 did not report 'QNBD-E2E: PASS $2'"
}

# The boot disk's layout (bytes): an MBR, partition 1 (FAT16: syslinux,
# kernel, initramfs), then two 4 MiB data partitions of type 0xda.
E2E_DISK_SIZE=$((48 << 20))
E2E_P1_OFF=$((1 << 20)) E2E_P1_SIZE=$((32 << 20))
E2E_P2_OFF=$((33 << 20)) E2E_P3_OFF=$((37 << 20)) E2E_PDATA_SIZE=$((4 << 20))

# e2e_boot_disk OUT INITRD APPEND: a raw disk that SeaBIOS boots: the
# MBR is syslinux's mbr.bin and a partition table; partition 1 (active)
# holds syslinux (put there by its mtools installer), $KERNEL and INITRD,
# and APPEND is the kernel command line.
e2e_boot_disk() {
  local out=$1 initrd=$2 append=$3 fs s=512
  rm -f "$out"
  truncate -s "$E2E_DISK_SIZE" "$out"
  # -h: the partition's start, for boot code that reads it from the BPB.
  mkfs.vfat -F 16 -n QNBDBOOT --offset $((E2E_P1_OFF / s)) -h $((E2E_P1_OFF / s)) \
    "$out" $((E2E_P1_SIZE / 1024)) >"$TMP/mkfs.txt" 2>&1 ||
    { cat "$TMP/mkfs.txt"; fail "mkfs.vfat"; }
  printf '%s\n' "SERIAL 0 115200" "PROMPT 0" "TIMEOUT 0" "DEFAULT linux" \
    "LABEL linux" "  KERNEL vmlinuz" "  APPEND initrd=initrd.gz $append" \
    >"$TMP/syslinux.cfg"
  fs="$out@@$E2E_P1_OFF"
  export MTOOLS_SKIP_CHECK=1
  mcopy -i "$fs" "$KERNEL" ::vmlinuz &&
    mcopy -i "$fs" "$initrd" ::initrd.gz &&
    mcopy -i "$fs" "$TMP/syslinux.cfg" ::syslinux.cfg || fail "mcopy"
  syslinux --install --offset "$E2E_P1_OFF" "$out" || fail "syslinux --install"
  dd if=/usr/lib/syslinux/mbr/mbr.bin of="$out" bs=440 count=1 conv=notrunc \
    status=none || fail "no syslinux mbr.bin (package syslinux-common)"
  /usr/bin/python3 "$E2E_LIB/mbr.py" "$out" \
    "1:0e:$((E2E_P1_OFF / s)):$((E2E_P1_SIZE / s))" \
    "0:da:$((E2E_P2_OFF / s)):$((E2E_PDATA_SIZE / s))" \
    "0:da:$((E2E_P3_OFF / s)):$((E2E_PDATA_SIZE / s))" || fail "mbr.py"
}

# e2e_random FILE BYTES: incompressible test data.
e2e_random() { head -c "$2" /dev/urandom >"$1"; }
