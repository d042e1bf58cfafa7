# qcow2 corpus: compat 0.10 and 1.1 with cluster sizes 512 B to 2 MiB.
# Every image read by qnbd-img and through qnbd equals qemu-img convert;
# maps and info agree with qemu-img's.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/qcow2-lib.bash"

imgs=()
for compat in 0.10 1.1; do
  for cs in 512 4k 64k 2M; do
    f=c-$compat-$cs.qcow2
    qemu-img create -q -f qcow2 -o compat=$compat,cluster_size=$cs "$f" 2M
    write_pattern "$f"
    imgs+=("$f")
  done
done
check_all "${imgs[@]}"
echo "checked $NIMAGES images"
