#!/usr/bin/env bash
# e2e: nbd-client.sh with qnbd serving a qcow2 image (needs qnbd to
# write qcow2).
export QNBD_E2E_FORMAT=qcow2
exec bash "$(dirname "$0")/nbd-client.sh"
