#!/usr/bin/env bash
# e2e: nbd-client.sh with two connections (nbd-client -C 2, multi-conn):
# the kernel spreads the requests of /dev/nbd0 over both.
export QNBD_E2E_CONNS=2
exec bash "$(dirname "$0")/nbd-client.sh"
