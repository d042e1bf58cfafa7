# qemu-nbd --list (NBD_OPT_LIST, then NBD_OPT_INFO and LIST_META_CONTEXT
# per export): over TCP and a Unix socket it shows each export with its
# name, description, size, transmission flags and base:allocation.
. "$(dirname "$0")/../lib.sh"
require qemu-nbd

truncate -s 3M main.img
truncate -s 1M alpha.img
args=(-x main --description "the main disk" --export alpha=alpha.img main.img)

# parse: "name|description|size|flags|contexts" per export.
parse() {
  /usr/bin/python3 -c '
import re, sys
out, cur = [], None
for line in sys.stdin:
    m = re.match(r"\s*export: \x27(.*)\x27$", line)
    if m:
        cur = {"name": m.group(1), "desc": "-", "ctx": []}
        out.append(cur)
        continue
    if cur is None:
        continue
    s = line.strip()
    if s.startswith("description:"):
        cur["desc"] = s.split(":", 1)[1].strip()
    elif s.startswith("size:"):
        cur["size"] = s.split()[1]
    elif s.startswith("flags:"):
        cur["flags"] = " ".join(sorted(s[s.index("(") + 1:s.index(")")].split()))
    elif s == "base:allocation":
        cur["ctx"].append(s)
for e in out:
    print("%s|%s|%s|%s|%s" % (e["name"], e["desc"], e.get("size"), e.get("flags"), ",".join(e["ctx"])))'
}

rw="cache df fast-zero flush fua multi rotational trim zeroes"
expected="main|the main disk|3145728|$rw|base:allocation
alpha|-|1048576|$rw|base:allocation"
# "rotational" is whatever the backing device says; compare without it
# when the server says otherwise.
norot() { sed 's/ rotational//'; }

check() { # check QEMU-NBD-ADDRESS-ARGS...
  qemu-nbd --list "$@" >"$TMP/list" || fail "qemu-nbd --list $*"
  got=$(parse <"$TMP/list" | norot)
  [ "$got" = "$(norot <<<"$expected")" ] || fail "qemu-nbd --list $*:
$(cat "$TMP/list")"
  grep -q '^exports available: 2$' "$TMP/list" || fail "export count: $(cat "$TMP/list")"
}

start_qnbd_tcp "${args[@]}"
check -b 127.0.0.1 -p "$PORT"
stop_qnbd

start_qnbd "${args[@]}"
check -k "$SOCK"
stop_qnbd

# Read-only: the flags say so and offer no write-side commands.
start_qnbd -r main.img
qemu-nbd --list -k "$SOCK" >"$TMP/list"
flags=$(grep flags: "$TMP/list")
[[ $flags == *readonly* ]] || fail "-r: $flags"
for f in trim zeroes fast-zero; do
  [[ " ${flags//[()]/ } " != *" $f "* ]] || fail "-r export offers $f: $flags"
done
stop_qnbd
