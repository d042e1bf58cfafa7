#!/usr/bin/env bash
# e2e: boot.sh with qnbd serving a qcow2 overlay whose backing file is a
# qcow2 base made from the boot disk (needs qnbd to write qcow2).
export QNBD_E2E_FORMAT=qcow2
exec bash "$(dirname "$0")/boot.sh"
