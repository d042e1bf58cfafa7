# --fork and --pid-file, as init scripts and Type=forking units use them:
# qnbd returns 0 once it listens (its stdout, the URI, closed so that
# $(...) returns), the pid file names the running server, clients work,
# and SIGTERM to that pid stops it and removes the socket and pid file.
# TCP and Unix.
. "$(dirname "$0")/../lib.sh"
require qemu-io nbdinfo

truncate -s 4M disk.img

gone() { # gone PID: the process has exited (a zombie counts as gone)
  [ ! -e "/proc/$1" ] || [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ]
}

daemon() { # daemon LISTEN-ARGS...: fork, check it, stop it
  rm -f qnbd.pid
  local uri pid
  uri=$(timeout 20 "$QNBD" --fork --pid-file "$TMP/qnbd.pid" "$@" disk.img \
    2>>"$TMP/qnbd.log") || fail "qnbd --fork $* exited with $?"
  if [ ! -s qnbd.pid ]; then
    # Find the server anyway so that the clean-up stops it, then fail.
    for _ in $(seq 50); do [ -s qnbd.pid ] && break; sleep 0.1; done
    [ -s qnbd.pid ] && _pids+=("$(cat qnbd.pid)")
    fail "no pid file yet when qnbd --fork returned"
  fi
  pid=$(cat qnbd.pid)
  _pids+=("$pid")
  [[ $pid =~ ^[0-9]+$ ]] || fail "pid file holds '$pid'"
  gone "$pid" && fail "pid $pid from the pid file is not running"
  [ "$(readlink -f "/proc/$pid/exe")" = "$(readlink -f "$QNBD")" ] ||
    fail "pid $pid is $(readlink -f "/proc/$pid/exe"), not qnbd"
  # Ready on return: no waiting for the listener.
  [ "$(nbdinfo --size "$uri")" = 4194304 ] || fail "nbdinfo --size $uri right after --fork"
  qemu-io -f raw -c 'write -P 0x5a 0 64k' -c 'read -P 0x5a 0 64k' "$uri" >/dev/null ||
    fail "qemu-io on $uri"
  kill -TERM "$pid"
  for _ in $(seq 50); do gone "$pid" && break; sleep 0.1; done
  gone "$pid" || fail "qnbd (pid $pid) still running 5 s after SIGTERM"
  [ ! -e qnbd.pid ] || fail "pid file left behind"
  qemu-io -f raw -c 'read -P 0x5a 0 64k' disk.img >/dev/null || fail "write lost"
}

daemon -p "$(free_port)" -b 127.0.0.1
daemon -U "$TMP/d.sock"
[ ! -e "$TMP/d.sock" ] || fail "socket file left behind"
