# The protocol over TCP, where payloads exceed the socket buffers: big
# WRITE payloads arrive in pieces, big READ replies leave in pieces while
# the client is not reading, and a client may reset the connection.
import os
import socket
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from qnbdtest import *  # noqa: E402,F401,F403

MARK = bytes(range(256)) * 4096  # 1 MiB


def server():
    return Server(["-f", "memory", "1G"],
                  {"nbdkit": ["memory", "1G"],
                   "qemu-nbd": qemu_sparse("1G")}, tcp=True)


def test_big_payloads():
    with server() as s:
        with raw_go(s.addr, meta=["base:allocation"]) as r:
            data = MARK * 16  # 16 MiB in one WRITE
            eq(r.cmd(CMD_WRITE, 8 * MiB, len(data), payload=data)[0], 0,
               "16 MiB WRITE")
            eq(r.read(8 * MiB, len(data)) == (0, data), True,
               "16 MiB READ back")
            err, chunks = r.cmd(CMD_BLOCK_STATUS, 0, 32 * MiB)
            eq(err, 0, "block status")
            r.disc()
            if not r.closed_by_server():
                raise AssertionError("no close after DISC")
        check_serves(s, offset=8 * MiB, expect=MARK)


def test_replies_while_client_not_reading():
    # 32 READs of 1 MiB sent back to back before reading any reply: the
    # server's replies fill the socket; it must wait, not fail or block
    # other clients.
    with server() as s:
        h = libnbd_connect(s.uri)
        h.pwrite(MARK, 0)
        with raw_go(s.addr, sr=False) as r:
            cookies = [r.request(CMD_READ, 0, MiB) for _ in range(32)]
            check_serves(s, offset=0, expect=MARK)  # meanwhile
            for _ in cookies:
                rep = r.recv_reply(read_len=MiB)
                eq((rep["error"], rep["payload"] == MARK), (0, True),
                   "queued READ %d" % rep["cookie"])
        h.shutdown()


def test_reset_mid_request():
    with server() as s:
        h = libnbd_connect(s.uri)
        h.pwrite(MARK, 0)
        # A WRITE over MARK, half its payload, then a TCP reset.
        r = raw_go(s.addr)
        r.request(CMD_WRITE, 0, 4 * MiB)
        r.send(b"\xee" * (2 * MiB))
        r.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                       struct.pack("ii", 1, 0))
        r.close()
        # READs queued, then a reset before reading the replies.
        r = raw_go(s.addr)
        for _ in range(16):
            r.request(CMD_READ, 0, MiB)
        r.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                       struct.pack("ii", 1, 0))
        r.close()
        eq(h.pread(MiB, 0) == MARK, True, "data after resets")
        h.shutdown()
        check_serves(s, offset=0, expect=MARK)


if __name__ == "__main__":
    run([test_big_payloads, test_replies_while_client_not_reading,
         test_reset_mid_request])
