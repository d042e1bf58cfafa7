# Helpers for tests/interop/nbdkit-*.sh: serve one nbdkit plugin under
# real nbdkit and under qnbd with the same parameters, and compare what
# clients see.  Source after tests/lib.sh.

PLUGINS=$QNBD_BUILD/tests/plugins
PLUGINDIR=$(pkg-config --variable=plugindir nbdkit 2>/dev/null ||
  echo /usr/lib/x86_64-linux-gnu/nbdkit/plugins)
NBD_PY=/usr/bin/python3
# Under ASan, what Debian's plugins leave allocated at unload is theirs.
export QNBD_NBDKIT_KEEP_LOADED=1

# sanitizer_preload ARGS...: the runtimes nbdkit must preload to load
# any of our plugins among ARGS built with -fsanitize (ASan CI builds).
sanitizer_preload() {
  local a lib pre=
  for a in "$@"; do
    [ -f "$a" ] && [ "${a%.so}" != "$a" ] || continue
    for lib in asan ubsan tsan; do
      if nm -D "$a" 2>/dev/null | grep -q "__${lib}_"; then
        pre="$pre:$(gcc -print-file-name=lib$lib.so)"
      fi
    done
  done
  echo "${pre#:}"
}

# start_nbdkit ARGS...: real nbdkit on $TMP/nbdkit.sock (URI $NK_URI).
start_nbdkit() {
  NK_SOCK=$TMP/nbdkit.sock
  NK_URI="nbd+unix:///?socket=$NK_SOCK"
  rm -f "$NK_SOCK"
  LD_PRELOAD=$(sanitizer_preload "$@") ASAN_OPTIONS=detect_leaks=0 \
    nbdkit -f -U "$NK_SOCK" "$@" >>"$TMP/nbdkit.log" 2>&1 &
  NK_PID=$!
  _pids+=("$NK_PID")
  wait_for_socket "$NK_SOCK"
}

stop_nbdkit() {
  # Bounded: with a sanitizer runtime preloaded, nbdkit's exit can hang
  # in a library destructor (not ours); it is only the reference server.
  kill -TERM "$NK_PID"
  for _ in $(seq 100); do
    kill -0 "$NK_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$NK_PID" 2>/dev/null || true
  wait "$NK_PID" 2>/dev/null || true
}

# serve_both PLUGIN ARGS...: the plugin under nbdkit ($NK_URI) and
# under qnbd ($URI).
serve_both() {
  start_nbdkit "$@"
  start_qnbd --plugin "$@"
}

# info_summary URI: size and flags as nbdinfo reports them.  Not
# can_fast_zero: qnbd always advertises it and fails fast itself.
info_summary() {
  nbdinfo --json "$1" | "$NBD_PY" -c '
import json, sys
e = json.load(sys.stdin)["exports"][0]
for k in ("export-size", "is_read_only", "is_rotational", "can_flush",
          "can_fua", "can_trim", "can_zero",
          "can_multi_conn", "can_cache", "can_df"):
    print(k, e.get(k))
print("base:allocation", "base:allocation" in e.get("contexts", []))'
}

same_info() {
  info_summary "$NK_URI" >"$TMP/nk.info"
  info_summary "$URI" >"$TMP/q.info"
  diff -u "$TMP/nk.info" "$TMP/q.info" || fail "nbdinfo differs ($*)"
}

# same_bytes: every byte of the export is the same under both servers.
same_bytes() {
  rm -f "$TMP/nk.img" "$TMP/q.img"
  nbdcopy -- "$NK_URI" "$TMP/nk.img"
  nbdcopy -- "$URI" "$TMP/q.img"
  cmp "$TMP/nk.img" "$TMP/q.img" || fail "contents differ ($*)"
}

# same_map: qemu-img map shows the same extents under both servers.
same_map() {
  qemu-img map --output=json -f raw "$NK_URI" >"$TMP/nk.map"
  qemu-img map --output=json -f raw "$URI" >"$TMP/q.map"
  diff -u "$TMP/nk.map" "$TMP/q.map" || fail "qemu-img map differs ($*)"
}

# client_errno URI PYTHON-STATEMENT: run it on a connected handle h and
# print the errno name it failed with ("OK" if it did not fail).
client_errno() {
  "$NBD_PY" - "$1" "$2" <<'PY'
import errno, nbd, sys
h = nbd.NBD()
h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
h.connect_uri(sys.argv[1])
try:
    exec(sys.argv[2])
    print("OK")
except nbd.Error as ex:
    print(errno.errorcode.get(ex.errno, ex.errno))
PY
}
