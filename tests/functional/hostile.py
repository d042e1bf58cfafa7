# Hostile and broken clients over a raw socket: bad magic, unknown
# client flags, oversize and truncated options, clients that vanish
# mid-payload or never finish the handshake, too many connections.
# After each attack the server must still serve a normal client, with
# the data written before the attack intact.
import os
import random
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from qnbdtest import *  # noqa: E402,F401,F403

MARK_OFF = 1 * MiB
MARK = bytes(range(256)) * 16  # 4 KiB written before every attack


def server(extra=(), nbdkit_filters=(), nbdkit_params=()):
    peers = {"nbdkit": list(nbdkit_filters) + ["memory", "1G"] +
             list(nbdkit_params)}
    if not extra:
        peers["qemu-nbd"] = qemu_sparse("1G")
    return Server(["-f", "memory", "1G"] + list(extra), peers)


class Attacked:
    """A server with MARK written, checked after the attack."""

    def __init__(self, *a, **kw):
        self.s = server(*a, **kw)

    def __enter__(self):
        self.s.start()
        h = libnbd_connect(self.s.uri)
        h.pwrite(MARK, MARK_OFF)
        h.shutdown()
        return self.s

    def __exit__(self, et, ev, tb):
        try:
            if et is None:
                check_serves(self.s, offset=MARK_OFF, expect=MARK)
        finally:
            self.s.stop()
        return False


def must_close(r, what, timeout=5):
    if not r.closed_by_server(timeout):
        raise AssertionError("server kept the connection open after " + what)


def test_bad_client_flags():
    with Attacked() as s:
        for flags in (1 << 2, 1 << 31, 0xFFFFFFFF, FLAG_FIXED_NEWSTYLE | 8):
            with Raw(s.sock) as r:
                r.greeting()
                r.send(struct.pack(">I", flags))
                # "the server MUST drop the TCP connection if the client
                # sets an unknown flag".
                try:
                    r.send_opt(OPT_LIST)
                    got = r.recv_opt_reply()
                except (EOFError, ConnectionResetError, BrokenPipeError):
                    continue
                raise AssertionError("client flags %#x accepted: %r"
                                     % (flags, got))


def test_bad_option_magic():
    with Attacked() as s:
        with Raw(s.sock) as r:
            r.handshake()
            r.send(struct.pack(">QII", 0x1122334455667788, OPT_LIST, 0))
            must_close(r, "an option with bad magic")
        # A transmission request while still negotiating.
        with Raw(s.sock) as r:
            r.handshake()
            r.send(struct.pack(">IHHQQI", REQUEST_MAGIC, 0, CMD_READ, 1, 0,
                               512))
            must_close(r, "a READ during option haggling")
        # Bad request magic in transmission.
        with raw_go(s.sock) as r:
            r.send(struct.pack(">IHHQQI", 0xDEADBEEF, 0, CMD_READ, 1, 0,
                               512))
            must_close(r, "a request with bad magic")
        # Garbage instead of client flags and options.
        with Raw(s.sock) as r:
            r.greeting()
            r.send(os.urandom(4096))
            must_close(r, "4 KiB of garbage")


def test_oversize_options():
    with Attacked() as s:
        # A name longer than the 4096-byte string limit: an error reply
        # (or a hard close), never a crash.
        with Raw(s.sock) as r:
            r.handshake()
            try:
                t, _ = r.go(b"n" * 5000, [INFO_NAME], opt=OPT_INFO)
                if not t & REP_ERR:
                    raise AssertionError("5000-byte export name accepted")
                t, _ = r.go("", [], opt=OPT_INFO)
                eq_rep(t, REP_ACK, "INFO after an oversize name")
            except EOFError:
                pass
        # 4096 bytes is the longest valid string: handled as a name
        # (unknown here; nbdkit's memory plugin takes any name).
        with Raw(s.sock) as r:
            r.handshake()
            t, _ = r.go(b"n" * 4096, [], opt=OPT_INFO)
            if t not in (REP_ERR_UNKNOWN, REP_ACK):
                raise AssertionError("INFO of a 4096-byte name: %s"
                                     % rep_name(t))
            t, _ = r.go("", [], opt=OPT_INFO)
            eq_rep(t, REP_ACK, "INFO after a 4096-byte name")
        # An option length of 4 GiB - 1 with a few bytes behind it: the
        # server cannot buffer it and must not wait for it forever.
        with Raw(s.sock) as r:
            r.handshake()
            r.send_opt(OPT_GO, b"\0" * 16, length=0xFFFFFFFF)
            try:
                rtype, _ = r.recv_opt_reply()
                if not rtype & REP_ERR:
                    raise AssertionError("4 GiB option accepted")
            except (EOFError, ConnectionResetError):
                pass
            must_close(r, "a 4 GiB option length", timeout=10)
        # 1 MiB of data on LIST (which takes none) and on an unknown
        # option: an error reply after skipping it, or a close.
        for opt in (OPT_LIST, 1234, OPT_SET_META_CONTEXT):
            with Raw(s.sock) as r:
                r.handshake()
                r.send_opt(OPT_STRUCTURED_REPLY)
                r.recv_opt_reply()
                try:
                    r.send_opt(opt, b"\xff" * MiB)
                    rtype, _ = r.recv_opt_reply(opt)
                    if not rtype & REP_ERR:
                        raise AssertionError("1 MiB option %d: %s"
                                             % (opt, rep_name(rtype)))
                    eq_rep(r.go("", [])[0], REP_ACK, "GO after 1 MiB option")
                except (EOFError, ConnectionResetError, BrokenPipeError):
                    pass
        # Meta context query count far beyond the data.
        with Raw(s.sock) as r:
            r.handshake()
            r.structured_reply()
            bad = struct.pack(">II", 0, 0x7FFFFFFF) + struct.pack(">I", 5) \
                + b"base:"
            try:
                eq_rep(r.opt_final(OPT_SET_META_CONTEXT, bad),
                       REP_ERR_INVALID, "SET_META_CONTEXT with 2^31 queries")
            except EOFError:
                pass


def test_truncated_and_vanishing():
    with Attacked() as s:
        # Option header promising 100 bytes, 10 sent, then gone.
        with Raw(s.sock) as r:
            r.handshake()
            r.send(struct.pack(">QII", IHAVEOPT, OPT_GO, 100) + b"\0" * 10)
        # Half an option header.
        with Raw(s.sock) as r:
            r.handshake()
            r.send(struct.pack(">Q", IHAVEOPT)[:5])
        # Half a request header.
        with raw_go(s.sock) as r:
            r.send(struct.pack(">IHH", REQUEST_MAGIC, 0, CMD_WRITE))
        # A WRITE over MARK of 1 MiB, half the payload sent, then gone:
        # the write must not happen (its payload never arrived).
        with raw_go(s.sock) as r:
            r.request(CMD_WRITE, MARK_OFF, MiB)
            r.send(b"\xee" * (MiB // 2))
        # The same with a disconnect by shutdown(SHUT_WR) only.
        r = raw_go(s.sock)
        r.request(CMD_WRITE, MARK_OFF, MiB)
        r.send(b"\xdd" * 1000)
        r.s.shutdown(socket.SHUT_WR)
        must_close(r, "EOF in the middle of a WRITE payload")
        r.close()
        time.sleep(0.2)


def test_pipelined_handshake():
    with Attacked() as s:
        # Everything in one write before reading anything: client flags,
        # STRUCTURED_REPLY, GO, and a READ.  Options are allowed to queue
        # in the socket; the server answers them in order.
        with Raw(s.sock) as r:
            r.send(struct.pack(">I", FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES) +
                   struct.pack(">QII", IHAVEOPT, OPT_STRUCTURED_REPLY, 0) +
                   struct.pack(">QII", IHAVEOPT, OPT_GO, 6) +
                   info_data("", []) +
                   struct.pack(">IHHQQI", REQUEST_MAGIC, 0, CMD_READ, 7,
                               MARK_OFF, len(MARK)))
            r.greeting()
            r.no_zeroes = True
            eq_rep(r.recv_opt_reply(OPT_STRUCTURED_REPLY)[0], REP_ACK,
                   "pipelined STRUCTURED_REPLY")
            r.sr = True
            while True:
                t, _ = r.recv_opt_reply(OPT_GO)
                if t != REP_INFO:
                    break
            eq_rep(t, REP_ACK, "pipelined GO")
            chunks = r.recv_all_chunks(7)
            data = b"".join(c["payload"][8:] for c in chunks
                            if c["type"] == REPLY_TYPE_OFFSET_DATA)
            eq(data, MARK, "pipelined READ")
        # Many options back to back without reading the replies.
        with Raw(s.sock) as r:
            r.handshake()
            r.send(struct.pack(">QII", IHAVEOPT, 999, 0) * 2000)
            try:
                for i in range(2000):
                    eq_rep(r.recv_opt_reply(999)[0], REP_ERR_UNSUP,
                           "unknown option %d" % i)
            except (EOFError, ConnectionResetError):
                pass  # a cap on the number of options is fine too


def test_handshake_timeout():
    only_qnbd("--handshake-timeout")
    with Attacked(["--handshake-timeout", "2"]) as s:
        t0 = time.time()
        idle = Raw(s.sock)  # connects, never reads or writes
        greeted = Raw(s.sock)
        greeted.greeting()
        slow = Raw(s.sock)  # one option, then nothing
        slow.handshake()
        eq_rep(slow.opt_final(OPT_LIST), REP_ACK, "LIST")
        partial = Raw(s.sock)  # stops in the middle of an option
        partial.handshake()
        partial.send(struct.pack(">QII", IHAVEOPT, OPT_GO, 100) + b"\0" * 10)
        for name, r in (("idle", idle), ("greeted", greeted),
                        ("slow", slow), ("partial", partial)):
            must_close(r, "the handshake timeout (%s)" % name,
                       timeout=max(0.1, t0 + 6 - time.time()))
            r.close()
        took = time.time() - t0
        if took < 1.5:
            raise AssertionError("closed after %.1f s, timeout is 2 s" % took)
        # A client in transmission is not subject to the timeout.
        with raw_go(s.sock) as r:
            time.sleep(3)
            eq(r.read(MARK_OFF, len(MARK)), (0, MARK),
               "read after 3 s idle in transmission")


def test_idle_clients_free_their_slots():
    # Clients that never finish the handshake cannot lock others out for
    # longer than the handshake timeout.
    only_qnbd("--handshake-timeout")
    with Attacked(["--max-connections", "2", "--handshake-timeout", "1"]) \
            as s:
        idle = []
        deadline = time.time() + 5
        while len(idle) < 2:  # greeted, then silent
            r = Raw(s.sock)
            try:
                r.greeting()
                idle.append(r)
            except (EOFError, ConnectionResetError):
                r.close()  # the setup connection's slot is not free yet
                if time.time() > deadline:
                    raise AssertionError("cannot open 2 connections")
                time.sleep(0.1)
        try:
            raw_go(s.sock).close()
            raise AssertionError("3rd connection served with max 2")
        except (EOFError, ConnectionResetError, BrokenPipeError,
                ProtocolError):
            pass
        deadline = time.time() + 5
        while True:
            try:
                with raw_go(s.sock) as c:
                    eq(c.read(MARK_OFF, 512), (0, MARK[:512]), "read")
                break
            except (EOFError, ConnectionResetError, BrokenPipeError,
                    ProtocolError):
                if time.time() > deadline:
                    raise AssertionError("idle clients hold the slots")
                time.sleep(0.2)
        for r in idle:
            r.close()


def raw_go_retry(path, timeout=5):
    """raw_go, retried while the server may still be freeing the slot of
    a connection that just closed."""
    deadline = time.time() + timeout
    while True:
        try:
            return raw_go(path)
        except (EOFError, ConnectionResetError, BrokenPipeError,
                ProtocolError):
            if time.time() > deadline:
                raise
            time.sleep(0.1)


def test_max_connections():
    with Attacked(["--max-connections", "3"], ["--filter=limit"],
                  ["limit=3"]) as s:
        conns = [raw_go_retry(s.sock) for _ in range(3)]
        # The 4th is refused: closed without a usable handshake.
        r = Raw(s.sock)
        try:
            r.handshake()
            r.send_opt(OPT_LIST)
            r.recv_opt_reply()
            raise AssertionError("4th connection served with max 3")
        except (EOFError, ConnectionResetError, BrokenPipeError,
                ProtocolError):
            pass
        r.close()
        # Existing connections still work.
        for c in conns:
            eq(c.read(MARK_OFF, 512), (0, MARK[:512]), "existing connection")
        # Freeing one slot admits a new client.
        conns.pop().disc()
        deadline = time.time() + 5
        while True:
            try:
                with raw_go(s.sock) as c:
                    eq(c.read(0, 512)[0], 0, "read on the freed slot")
                break
            except (EOFError, ConnectionResetError, ProtocolError):
                if time.time() > deadline:
                    raise AssertionError("no slot after a disconnect")
                time.sleep(0.1)
        for c in conns:
            c.close()
        time.sleep(0.3)  # let the server notice before the final check


def test_many_connections():
    with Attacked() as s:
        conns = [raw_go(s.sock) for _ in range(64)]
        for i, c in enumerate(conns):
            c.request(CMD_READ, MARK_OFF, 512, cookie=i)
        for i, c in enumerate(conns):
            ch = c.recv_all_chunks(i)
            eq(ch[-1]["error"], 0, "read on connection %d" % i)
        for c in conns:
            c.close()


def test_huge_write_length():
    with Attacked() as s:
        with raw_go(s.sock, sr=False) as r:
            r.request(CMD_WRITE, 0, 0xFFFFFFFF)
            r.send(b"\0" * 4096)
            # The server may hang up (a DoS guard), answer with an
            # error, or keep consuming the payload; it must not crash
            # nor write anything (checked on exit).
            r.s.settimeout(5)
            try:
                rep = r.recv_reply()
                if rep["error"] == 0:
                    raise AssertionError("4 GiB WRITE succeeded")
            except (EOFError, ConnectionResetError, socket.timeout):
                pass


WIRE_ERRNOS = {EPERM, EIO, ENOMEM, EINVAL, ENOSPC, EOVERFLOW, ENOTSUP,
               ESHUTDOWN}


def random_request(rnd, size):
    """(type, flags, offset, length, payload) of a random, often invalid
    request that never touches MARK."""
    cmd = rnd.choice([0, 0, 1, 1, 3, 4, 5, 6, 7, 7, 8, 12, 0xFFFF])
    flags = rnd.choice([0, 0, 0, 1, 2, 4, 8, 16, 32, rnd.getrandbits(16)])
    offset = rnd.choice([2 * MiB, size - 512, size - 1, size, 1 << 63,
                         (1 << 64) - 512, rnd.randrange(2 * MiB, size)])
    length = rnd.choice([0, 1, 512, 4096, 65536, 0xFFFFFFFF,
                         rnd.randrange(1, MiB)])
    payload = b""
    if cmd == CMD_WRITE:
        length = min(length, 65536)
        payload = rnd.randbytes(length)
    return cmd, flags, offset, length, payload


def test_random_requests():
    # 600 random requests (seeded): every reply carries a wire errno the
    # spec defines, and a hard disconnect is the worst that happens.
    rnd = random.Random(42)
    with Attacked() as s:
        r, reconnects = None, 0
        for i in range(600):
            if r is None:
                sr = bool(i % 2)
                r = raw_go(s.sock, sr=sr,
                           meta=["base:allocation"] if sr else ())
            cmd, flags, off, ln, payload = random_request(rnd, r.size)
            try:
                c = r.request(cmd, off, ln, flags, payload)
                r.s.settimeout(10)
                chunks = r.recv_all_chunks(
                    c, read_len=ln if cmd == CMD_READ else None)
            except (EOFError, ConnectionResetError, BrokenPipeError):
                r.close()
                r, reconnects = None, reconnects + 1
                continue
            for ch in chunks:
                if ch["error"] and ch["error"] not in WIRE_ERRNOS:
                    raise AssertionError(
                        "request %d (cmd %d flags %#x off %d len %d): "
                        "error %d is not an NBD error value"
                        % (i, cmd, flags, off, ln, ch["error"]))
        if r is not None:
            r.close()
        print("  %d reconnects after hard disconnects" % reconnects)


if __name__ == "__main__":
    run([test_bad_client_flags, test_bad_option_magic, test_oversize_options,
         test_truncated_and_vanishing, test_pipelined_handshake,
         test_handshake_timeout, test_idle_clients_free_their_slots,
         test_max_connections, test_many_connections,
         test_huge_write_length, test_random_requests])
