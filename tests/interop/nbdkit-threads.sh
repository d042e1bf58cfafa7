# The server keeps each nbdkit thread model's promise (nbdkit-plugin(3)
# "Threads").  tests/plugins/threads.c, built once per model, fails any
# call the model forbids and records the concurrency it saw; under load
# from parallel connections with many reads in flight, no call fails,
# and each model still reaches the concurrency it allows (so the test
# is not passing by serialising everything).  Each client also lists
# exports, so preconnect/list_exports/default_export run concurrently;
# as in nbdkit 1.32 only SERIALIZE_CONNECTIONS constrains those.
# threads3 asked for model=1 at run time: the stricter model wins.
. "$(dirname "$0")/../lib.sh"
. "$QNBD_TESTS/plugins/compare.sh"

stat() { # KEY: a number from the stats file
  sed -n "s/.* $1=\([0-9]*\).*/\1/p" stats
}

run() { # PLUGIN [ARGS...]
  rm -f stats
  start_qnbd --plugin "$PLUGINS/nbdkit-$1-plugin.so" stats="$TMP/stats" \
    delay=20 "${@:2}"
  "$NBD_PY" "$QNBD_TESTS/plugins/threads-client.py" "$URI" 4 8 ||
    fail "$*: reads failed"
  stop_qnbd
  [ -s stats ] || fail "$*: no stats"
  echo "$*: $(cat stats)"
  [ "$(stat violations)" = 0 ] || fail "$*: the thread model was violated"
}

run threads0
[ "$(stat max_open)" = 1 ] || fail "threads0: two handles open at once"

run threads1
[ "$(stat max_in_flight)" = 1 ] || fail "threads1: parallel calls"
[ "$(stat max_open)" -gt 1 ] || fail "threads1: connections were serialised"

run threads2
[ "$(stat max_per_handle)" = 1 ] || fail "threads2: parallel calls on a handle"
[ "$(stat max_in_flight)" -gt 1 ] || fail "threads2: handles were serialised"

run threads3
[ "$(stat max_per_handle)" -gt 1 ] || fail "threads3: no parallel calls"

run threads3 model=1
[ "$(stat max_in_flight)" = 1 ] || fail "threads3 model=1: parallel calls"
