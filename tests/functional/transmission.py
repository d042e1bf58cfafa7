# Transmission-phase conformance (doc/proto.md "Request types", "Error
# values"): every bad request gets the errno the spec names and the
# connection goes on; REQ_ONE, DF and sparse reads behave as specified.
# libnbd runs with strict mode off so that it sends the bad requests.
import os
import random
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from qnbdtest import *  # noqa: E402,F401,F403
import nbd  # noqa: E402

SIZE = 1 * GiB
errnos = __import__("errno")


# Every test runs on a memory export, then again on a sparse raw file.
KIND = ["memory"]


def server(ro=False, size="1G"):
    extra = ["-r"] if ro else []
    if KIND[0] == "file":
        return file_server(size, extra)
    return Server(extra + ["-f", "memory", size],
                  {"nbdkit": extra + ["memory", size],
                   "qemu-nbd": qemu_sparse(size, extra)})


def loose(s, sr=True, meta=True):
    h = nbd.NBD()
    h.set_strict_mode(0)
    h.set_request_structured_replies(sr)
    if meta:
        h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
    h.connect_uri(s.uri)
    return h


def expect_errno(fn, args, want, what, peers_differ=False):
    """want: one errno or a tuple of acceptable ones.  peers_differ: a
    validation peer is known to answer differently (qemu-nbd 7.2 gives
    EINVAL for writes past the end and on read-only exports)."""
    got = libnbd_errno(fn, *args)
    wants = want if isinstance(want, tuple) else (want,)
    if got not in wants:
        msg = "%s: got %s, expected %s" % (
            what, errname(got), "/".join(errname(w) for w in wants))
        if peers_differ:
            spec_violation(msg)
        else:
            raise AssertionError(msg)


def test_out_of_bounds():
    with server() as s:
        for sr in (True, False):
            h = loose(s, sr=sr)
            tag = " (sr=%s)" % sr
            expect_errno(h.pread, (512, SIZE), errnos.EINVAL,
                         "read at the end" + tag)
            expect_errno(h.pread, (1024, SIZE - 512), errnos.EINVAL,
                         "read across the end" + tag)
            expect_errno(h.pread, (512, 1 << 62), errnos.EINVAL,
                         "read far beyond the end" + tag)
            # "The server SHOULD return ENOSPC if it receives a write
            # request including one or more sectors beyond the size".
            expect_errno(h.pwrite, (b"z" * 1024, SIZE - 512),
                         errnos.ENOSPC, "write across the end" + tag, True)
            expect_errno(h.pwrite, (b"z" * 512, SIZE), errnos.ENOSPC,
                         "write at the end" + tag, True)
            # TRIM/WRITE_ZEROES past the end: the spec names no errno;
            # ENOSPC (a write) or EINVAL are both reasonable.
            expect_errno(h.trim, (1024, SIZE - 512),
                         (errnos.ENOSPC, errnos.EINVAL),
                         "trim across the end" + tag)
            expect_errno(h.zero, (1024, SIZE - 512),
                         (errnos.ENOSPC, errnos.EINVAL),
                         "zero across the end" + tag)
            if sr:
                expect_errno(h.block_status,
                             (1024, SIZE - 512, lambda *a: 0),
                             errnos.EINVAL, "block status across the end")
            # The last sector itself is fine, and nothing was written.
            eq(h.pread(512, SIZE - 512), bytes(512), "last sector")
            h.shutdown()
    # Offset + length wrapping around 2^64 (raw: libnbd refuses it).
    with server() as s, raw_go(s.sock) as r:
        err, _ = r.read((1 << 64) - 512, 1024)
        eq(err, EINVAL, "read with offset+length overflowing 64 bits")
        err, _ = r.cmd(CMD_WRITE_ZEROES, (1 << 64) - 512, 1024)
        if err not in (EINVAL, ENOSPC):
            raise AssertionError("zero wrapping 2^64 got %d" % err)
        eq(r.read(0, 512), (0, bytes(512)), "read after bad requests")


def test_unknown_command_and_flags():
    with server() as s:
        for sr in (True, False):
            with raw_go(s.sock, sr=sr) as r:
                for cmd in (8, 99, 0xFFFF):
                    err, chunks = r.cmd(cmd, 0, 512)
                    eq(err, EINVAL, "unknown command %d (sr=%s)" % (cmd, sr))
                # Unknown flag bits on known commands.
                err, _ = r.cmd(CMD_FLUSH, flags=1 << 12)
                eq(err, EINVAL, "FLUSH with unknown flag")
                err, _ = r.cmd(CMD_WRITE, 0, 512, flags=1 << 15,
                               payload=b"q" * 512)
                eq(err, EINVAL, "WRITE with unknown flag")
                err, data = r.read(0, 512, flags=1 << 9)
                eq(err, EINVAL, "READ with unknown flag")
                # REQ_ONE is documented for BLOCK_STATUS only.
                err, _ = r.cmd(CMD_WRITE, 0, 512, flags=CMD_FLAG_REQ_ONE,
                               payload=b"q" * 512)
                eq(err, EINVAL, "WRITE with REQ_ONE")
                # PAYLOAD_LEN is only valid with extended headers.
                err, _ = r.cmd(CMD_TRIM, 0, 512, flags=CMD_FLAG_PAYLOAD_LEN)
                if PEER == "qnbd":
                    eq(err, EINVAL, "TRIM with PAYLOAD_LEN, compact headers")
                eq(r.read(0, 512), (0, bytes(512)),
                   "bad writes wrote nothing (sr=%s)" % sr)


def test_read_only():
    with server(ro=True) as s:
        h = loose(s)
        eq(h.is_read_only(), True, "read-only flag")
        # "it SHOULD return EPERM if it receives a write or trim request
        # on a read-only export".
        expect_errno(h.pwrite, (b"w" * 512, 0), errnos.EPERM, "write", True)
        expect_errno(h.trim, (512, 0), errnos.EPERM, "trim", True)
        expect_errno(h.zero, (512, 0), errnos.EPERM, "write zeroes", True)
        eq(h.pread(512, 0), bytes(512), "read on a read-only export")
        h.shutdown()


def test_oversize_requests():
    with server(size="8G") as s:
        # Max payload from an INFO.
        with Raw(s.sock) as q:
            q.handshake()
            _, info = q.go("", [INFO_BLOCK_SIZE], opt=OPT_INFO)
        mx = struct.unpack(">III", info[INFO_BLOCK_SIZE])[2] \
            if INFO_BLOCK_SIZE in info else 32 * MiB
        for sr in (False, True):
            with raw_go(s.sock, sr=sr) as r:
                # With simple replies a READ above the maximum payload
                # "will fail"; with structured replies the server MAY
                # split it instead.  Either way: no disconnect.
                err, data = r.read(0, mx + 1)
                if err not in (EINVAL, EOVERFLOW) and (not sr or err != 0):
                    # nbdkit 1.32 serves up to 64 MiB while advertising
                    # a 32 MiB maximum.
                    spec_violation("READ of max+1=%d (sr=%s): %s"
                                   % (mx + 1, sr, errname(err)))
                err, _ = r.read(0, 0xFFFFFFFF)
                if err == ENOMEM:
                    # nbdkit 1.32; "The server SHOULD NOT return ENOMEM".
                    spec_violation("READ of 4 GiB: ENOMEM")
                elif err not in (EINVAL, EOVERFLOW):
                    raise AssertionError("READ of 4 GiB: %s" % errname(err))
                # Payload-free commands above max payload: an answer,
                # not a disconnect ("Block size constraints").
                for cmd in (CMD_TRIM, CMD_WRITE_ZEROES, CMD_CACHE):
                    if cmd == CMD_CACHE and PEER != "qnbd":
                        continue
                    err, _ = r.cmd(cmd, 0, 0xFFFFFE00)
                    if err not in (0, EINVAL, EOVERFLOW):
                        raise AssertionError("cmd %d of 4 GiB: %s"
                                             % (cmd, errname(err)))
                eq(r.read(0, 512)[0], 0, "read after oversize requests")
                if sr:
                    # A 32 MiB read at the end of the disk works.
                    err, data = r.read(r.size - 32 * MiB, 32 * MiB)
                    eq((err, len(data or b"")), (0, 32 * MiB),
                       "32 MiB read")


def test_zero_length():
    # Behaviour is unspecified, but "the server SHOULD NOT disconnect".
    with server() as s:
        for sr in (True, False):
            with raw_go(s.sock, sr=sr, meta=["base:allocation"] if sr
                        else ()) as r:
                for cmd in (CMD_READ, CMD_WRITE, CMD_TRIM, CMD_WRITE_ZEROES,
                            CMD_CACHE, CMD_BLOCK_STATUS):
                    if cmd == CMD_BLOCK_STATUS and not sr:
                        continue
                    if cmd == CMD_CACHE and PEER != "qnbd":
                        continue
                    # Any errno is allowed (nbdkit 1.32 answers a
                    # zero-length WRITE with ENOSPC); a reply must come.
                    err, chunks = r.cmd(cmd, 4096, 0)
                    if cmd == CMD_READ and sr:
                        for c in chunks:
                            eq(c["magic"], STRUCTURED_REPLY_MAGIC,
                               "zero-length READ reply magic")
                eq(r.read(0, 512)[0], 0, "read after zero-length requests")


def test_block_status_without_context():
    with server() as s:
        with raw_go(s.sock, sr=True) as r:
            err, _ = r.cmd(CMD_BLOCK_STATUS, 0, 4096)
            eq(err, EINVAL, "BLOCK_STATUS with no context selected")
            eq(r.read(0, 512)[0], 0, "read afterwards")
        with raw_go(s.sock, sr=False) as r:
            err, _ = r.cmd(CMD_BLOCK_STATUS, 0, 4096)
            eq(err, EINVAL, "BLOCK_STATUS without structured replies")
            eq(r.read(0, 512)[0], 0, "read afterwards")
        h = loose(s, meta=False)
        expect_errno(h.block_status, (4096, 0, lambda *a: 0), errnos.EINVAL,
                     "libnbd block_status without a context")
        h.shutdown()


def pattern(n, seed):
    return random.Random(seed).randbytes(n)


def test_fua_df_on_read():
    with server() as s, raw_go(s.sock) as r:
        data = pattern(4096, 1)
        eq(r.cmd(CMD_WRITE, 8192, 4096, payload=data)[0], 0, "write")
        if r.tflags & TF_SEND_FUA:
            # "valid for all commands ... the server MUST accept".
            eq(r.read(8192, 4096, flags=CMD_FLAG_FUA), (0, data),
               "READ with FUA")
        if not r.tflags & TF_SEND_DF:
            raise Skip("no SEND_DF")
        # 64 KiB mixing data and hole, DF: at most one content chunk.
        err, chunks = r.cmd(CMD_READ, 0, 65536, flags=CMD_FLAG_DF)
        eq(err, 0, "READ with DF")
        content = [c for c in chunks if c["type"] in
                   (REPLY_TYPE_OFFSET_DATA, REPLY_TYPE_OFFSET_HOLE)]
        eq(len(content), 1, "content chunks with DF")
        eq(content[0]["type"], REPLY_TYPE_OFFSET_DATA,
           "DF over data and hole uses OFFSET_DATA")
        p = content[0]["payload"]
        eq(struct.unpack(">Q", p[:8])[0], 0, "DF chunk offset")
        want = bytes(8192) + data + bytes(65536 - 12288)
        eq(p[8:] == want, True, "DF chunk data")
    with server() as s:
        h = loose(s)
        if h.can_df():
            got = h.pread_structured(65536, 0, lambda *a: 0, nbd.CMD_FLAG_DF)
            eq(got, bytes(65536), "libnbd DF read")
        h.shutdown()


def collect_extents(h, length, offset, flags=0):
    out = []

    def cb(meta, off, entries, err):
        if meta == nbd.CONTEXT_BASE_ALLOCATION:
            out.append(list(zip(entries[0::2], entries[1::2])))
        return 0
    h.block_status(length, offset, cb, flags)
    eq(len(out), 1, "base:allocation chunks")
    return out[0]


def test_req_one_and_extents():
    with server() as s:
        h = loose(s)
        # Layout: data [1M, 1M+64K), hole, data [2M, 3M), zeroed [3M, 4M).
        h.pwrite(pattern(65536, 2), 1 * MiB)
        h.pwrite(b"\xff" * MiB, 2 * MiB)
        h.zero(MiB, 3 * MiB)
        for off, ln in ((0, 4 * MiB), (MiB, 4 * MiB), (MiB + 512, 4096),
                        (2 * MiB - 4096, 8192), (0, 512), (3 * MiB, MiB)):
            ext = collect_extents(h, ln, off, nbd.CMD_FLAG_REQ_ONE)
            eq(len(ext), 1, "REQ_ONE extents at %d+%d" % (off, ln))
            if not 0 < ext[0][0] <= ln:
                raise AssertionError("REQ_ONE extent %d for a %d request"
                                     % (ext[0][0], ln))
        # Without REQ_ONE: consecutive, non-empty, consistent with data.
        ext = collect_extents(h, 4 * MiB, 0)
        pos = 0
        for ln, fl in ext:
            if ln == 0:
                raise AssertionError("empty extent")
            a, b = pos, pos + ln
            if a < 1 * MiB + 65536 and b > 1 * MiB and fl & STATE_ZERO:
                raise AssertionError("written data reported as zero")
            if a < 3 * MiB and b > 2 * MiB and fl & STATE_HOLE:
                raise AssertionError("written data reported as a hole")
            pos = b
        if pos < 1 * MiB + 65536:
            raise AssertionError("extents cover only %d bytes" % pos)
        h.shutdown()


def test_sparse_read():
    with server() as s:
        h = loose(s)
        rnd = random.Random(3)
        image = bytearray(8 * MiB)
        for _ in range(12):
            off = rnd.randrange(0, 8 * MiB - 70000) & ~511
            n = rnd.choice([512, 4096, 65536, 1000])
            d = pattern(n, off)
            h.pwrite(d, off)
            image[off:off + n] = d
        h.trim(MiB, 4 * MiB)  # may or may not punch; rewrite to know
        h.pwrite(bytes(image[4 * MiB:5 * MiB]), 4 * MiB)
        holes = [0]

        def chunk(buf, off, status, err):
            if status == nbd.READ_HOLE:
                holes[0] += 1
            return 0
        # Skip the trimmed-but-not-rewritten ranges: their content is
        # unspecified after TRIM.
        for off, n in ((0, MiB), (4 * MiB, MiB), (5 * MiB, 3 * MiB),
                       (4 * MiB, 4 * MiB)):
            got = h.pread_structured(n, off, chunk)
            if got != bytes(image[off:off + n]):
                raise AssertionError("sparse read mismatch at %d" % off)
        if PEER == "qnbd" and holes[0] == 0:
            raise AssertionError("no OFFSET_HOLE chunk for a sparse read")
        h.shutdown()


def test_structured_read_errors():
    # "if structured replies are negotiated, the server ... MUST NOT use
    # a simple reply for NBD_CMD_READ (even for the case of an early
    # EINVAL due to bad flags)".
    with server() as s, raw_go(s.sock) as r:
        for off, ln, fl in ((SIZE, 512, 0), (0, 512, 1 << 9)):
            err, chunks = r.cmd(CMD_READ, off, ln, fl)
            eq(err, EINVAL, "bad READ %d+%d flags %#x" % (off, ln, fl))
            for c in chunks:
                eq(c["magic"], STRUCTURED_REPLY_MAGIC, "bad READ reply magic")
            errs = [c for c in chunks if c["type"] in
                    (REPLY_TYPE_ERROR, REPLY_TYPE_ERROR_OFFSET)]
            eq(len(errs) >= 1, True, "an error chunk")
            for c in chunks:
                if c["type"] in (REPLY_TYPE_OFFSET_DATA,
                                 REPLY_TYPE_OFFSET_HOLE):
                    raise AssertionError("content chunk for a bad READ")
        eq(r.read(0, 512), (0, bytes(512)), "read afterwards")


def test_disc_finishes_inflight():
    # NBD_CMD_DISC: "The server MUST handle all outstanding requests".
    with server() as s:
        r = raw_go(s.sock)
        data = [pattern(65536, 10 + i) for i in range(16)]
        cookies = [r.request(CMD_WRITE, i * 65536, 65536, payload=d)
                   for i, d in enumerate(data)]
        r.disc()
        errs = {}
        try:
            while len(errs) < len(cookies):
                rep = r.recv_reply()
                errs[rep["cookie"]] = rep["error"]
        except EOFError:
            pass
        if not r.closed_by_server():
            raise AssertionError("no close after DISC")
        r.close()
        failed = [c for c, e in errs.items() if e]
        if failed:
            # nbdkit 1.32 may answer queued requests with ESHUTDOWN.
            spec_violation("%d writes queued before DISC failed (errors %s)"
                           % (len(failed), set(errs[c] for c in failed)))
        h = libnbd_connect(s.uri)
        for i, d in enumerate(data):
            if cookies[i] in failed:
                continue
            eq(h.pread(65536, i * 65536) == d, True,
               "write %d sent before DISC landed" % i)
        h.shutdown()
        if set(errs) != set(cookies):
            # qemu-nbd 7.2 may drop the last reply.
            spec_violation("replies to %d of %d requests sent before DISC"
                           % (len(errs), len(cookies)))


def test_parallel_aio():
    # 64 requests in flight on one connection; replies may come in any
    # order, each must match its request.
    with server() as s:
        h = loose(s)
        bufs = []
        for i in range(64):
            b = nbd.Buffer.from_bytearray(bytearray(pattern(32768, 100 + i)))
            bufs.append(b)
            h.aio_pwrite(b, i * 40960)
        while h.aio_in_flight() > 0:
            h.poll(-1)
        outs = [nbd.Buffer(32768) for _ in range(64)]
        for i, b in enumerate(outs):
            h.aio_pread(b, i * 40960)
        while h.aio_in_flight() > 0:
            h.poll(-1)
        for i in range(64):
            eq(outs[i].to_bytearray() == bytearray(pattern(32768, 100 + i)),
               True, "parallel read %d" % i)
        h.shutdown()


def test_zero_flags_and_cache():
    with server() as s:
        h = loose(s)
        h.pwrite(b"\x55" * 65536, 0)
        h.zero(65536, 0, nbd.CMD_FLAG_NO_HOLE)
        eq(h.pread(65536, 0), bytes(65536), "zero with NO_HOLE")
        h.pwrite(b"\x55" * 65536, 0)
        if h.can_fast_zero():
            try:
                h.zero(65536, 0, nbd.CMD_FLAG_FAST_ZERO)
                eq(h.pread(65536, 0), bytes(65536), "fast zero")
            except nbd.Error as e:
                # "the server MUST fail quickly with an error of ENOTSUP"
                # when it cannot zero fast.
                eq(e.errnum, errnos.ENOTSUP, "FAST_ZERO error")
        h.pwrite(b"\x66" * 512, 0, nbd.CMD_FLAG_FUA)
        h.flush()
        eq(h.pread(512, 0), b"\x66" * 512, "FUA write")
        if h.can_cache():
            h.cache(MiB, 0)
            expect_errno(h.cache, (1024, SIZE - 512), errnos.EINVAL,
                         "cache across the end")
        h.shutdown()


def test_multi_conn_and_backpressure():
    with server() as s:
        a, b = loose(s), loose(s)
        # Many large writes in flight at once: the server may stop
        # reading while replies queue up, but everything completes.
        blobs = [pattern(4096, 500 + i) * 256 for i in range(8)]  # 1 MiB
        for i in range(48):
            a.aio_pwrite(nbd.Buffer.from_bytearray(bytearray(blobs[i % 8])),
                         64 * MiB + i * MiB)
        while a.aio_in_flight() > 0:
            a.poll(-1)
        if a.can_multi_conn():
            # "the effects of FLUSH and FUA MUST be visible across all
            # connections when the server sends its reply".
            a.flush()
            a.pwrite(b"\x77" * 4096, 0, nbd.CMD_FLAG_FUA)
        else:
            a.flush()
            a.pwrite(b"\x77" * 4096, 0)
            a.flush()
        eq(b.pread(4096, 0), b"\x77" * 4096, "FUA write seen by another "
           "connection")
        for i in (0, 7, 30, 47):
            eq(b.pread(MiB, 64 * MiB + i * MiB) == blobs[i % 8], True,
               "pipelined 1 MiB write %d" % i)
        a.shutdown()
        b.shutdown()


def test_fragmented_block_status():
    # 64 KiB data / 64 KiB hole alternating over 64 MiB (64 KiB: the
    # page of qnbd's memory backend): 1024 extents in one reply.  Each
    # descriptor must agree with the layout (data never reported as
    # zero), none may be empty, and the reply stays within the spec's
    # 2^20 descriptors.
    B = 65536
    with server() as s:
        h = loose(s)
        base, span = 256 * MiB, 64 * MiB
        blk = b"\xa5" * B
        for off in range(base, base + span, 2 * B):
            h.aio_pwrite(nbd.Buffer.from_bytearray(bytearray(blk)), off)
            if h.aio_in_flight() > 64:
                h.poll(-1)
        while h.aio_in_flight() > 0:
            h.poll(-1)
        h.shutdown()
        with raw_go(s.sock, meta=["base:allocation"]) as r:
            err, chunks = r.cmd(CMD_BLOCK_STATUS, base, span)
            eq(err, 0, "block status")
            bs = [c for c in chunks if c["type"] == REPLY_TYPE_BLOCK_STATUS]
            eq(len(bs), 1, "status chunks")
            p = bs[0]["payload"]
            n = (len(p) - 4) // 8
            if n > 1 << 20 or (len(p) - 4) % 8:
                raise AssertionError("bad status payload of %d bytes"
                                     % len(p))
            pos, prev = base, None
            for i in range(n):
                ln, fl = struct.unpack(">II", p[4 + 8 * i:12 + 8 * i])
                if fl == prev:
                    # "The server SHOULD use different status values
                    # between consecutive descriptors".
                    spec_violation("descriptors %d and %d both %d"
                                   % (i - 1, i, fl))
                prev = fl
                if ln == 0:
                    raise AssertionError("empty descriptor %d" % i)
                # Any data block inside [pos, pos + ln)?
                first = pos + (-(pos - base) % (2 * B))
                has_data = first < pos + ln or (pos - base) % (2 * B) < B
                if has_data and fl & STATE_ZERO:
                    raise AssertionError("extent %d+%d holds data but is "
                                         "reported zero" % (pos, ln))
                if PEER == "qnbd" and not has_data and \
                        fl != STATE_HOLE | STATE_ZERO:
                    raise AssertionError("hole %d+%d reported as %d"
                                         % (pos, ln, fl))
                pos += ln
            # The server MAY return fewer descriptors than the range
            # needs; qnbd's memory backend tracks 64 KiB pages, so at
            # least a good run of them must show.
            if PEER == "qnbd" and n < 64:
                raise AssertionError("%d descriptors for %d alternating "
                                     "extents" % (n, span // B))


def on_files(tests):
    """The same tests on a raw file export."""
    def wrap(t):
        def f():
            KIND[0] = "file"
            try:
                t()
            finally:
                KIND[0] = "memory"
        f.__name__ = t.__name__ + "_file"
        return f
    # Size checks happen before any backend call: once is enough.
    return tests + [wrap(t) for t in tests
                    if t not in (test_oversize_requests, test_zero_length,
                                 test_unknown_command_and_flags)]


if __name__ == "__main__":
    run(on_files([test_out_of_bounds, test_unknown_command_and_flags, test_read_only,
         test_oversize_requests, test_zero_length,
         test_block_status_without_context, test_fua_df_on_read,
         test_req_one_and_extents, test_sparse_read,
         test_structured_read_errors, test_disc_finishes_inflight,
         test_parallel_aio, test_zero_flags_and_cache,
         test_multi_conn_and_backpressure, test_fragmented_block_status]))
