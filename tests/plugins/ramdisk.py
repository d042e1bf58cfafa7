# A RAM disk written for nbdkit's python plugin (API 2), loaded by
# tests/interop/nbdkit-python.sh under qnbd and nbdkit: exports, reads,
# writes, zeroes, trims, and an errno chosen with nbdkit.set_error for
# the sector at bad=OFFSET.
import errno

import nbdkit

API_VERSION = 2

size = 1024 * 1024
bad = -1
disk = None


def thread_model():
    return nbdkit.THREAD_MODEL_SERIALIZE_ALL_REQUESTS


def config(key, value):
    global size, bad
    if key == "size":
        size = nbdkit.parse_size(value)
    elif key == "bad":
        bad = int(value)
    else:
        raise RuntimeError("unknown parameter " + key)


def config_complete():
    global disk
    disk = bytearray(size)


def list_exports(readonly, is_tls):
    return [("", "the disk"), "second"]


def default_export(readonly, is_tls):
    return ""


def open(readonly):
    return {"name": nbdkit.export_name()}


def get_size(h):
    return len(disk)


def can_write(h):
    return True


def can_trim(h):
    return True


def can_zero(h):
    return True


def can_flush(h):
    return True


def can_multi_conn(h):
    return True


def check(offset, count):
    if bad >= 0 and offset <= bad < offset + count:
        nbdkit.set_error(errno.ENOSPC)
        raise RuntimeError("the bad sector")


def pread(h, buf, offset, flags):
    check(offset, len(buf))
    buf[:] = disk[offset:offset + len(buf)]


def pwrite(h, buf, offset, flags):
    check(offset, len(buf))
    disk[offset:offset + len(buf)] = buf


def zero(h, count, offset, flags):
    disk[offset:offset + count] = bytearray(count)


def trim(h, count, offset, flags):
    disk[offset:offset + count] = bytearray(count)


def flush(h, flags):
    pass
