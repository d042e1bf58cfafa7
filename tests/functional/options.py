# Option haggling (doc/proto.md "Option types"): every option qnbd knows
# and each of its error replies, checked byte for byte with a raw client
# and again through libnbd's option mode.
import os
import shutil
import struct
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from qnbdtest import *  # noqa: E402,F401,F403
import nbd  # noqa: E402

DESC = "qnbd functional test disk"
SIZE = 1 * GiB
A_SIZE, B_SIZE = 1 * MiB, 3 * MiB


def main_server():
    """One default export "" with a description."""
    return Server(
        ["-f", "memory", "1G", "--description", DESC],
        {"nbdkit": ["--filter=exportname", "memory", "1G",
                    "exportdesc=fixed:" + DESC, "exportname=",
                    "exportname-strict=true"],
         "qemu-nbd": qemu_sparse("1G", ["-D", DESC])})


def multi_server(d):
    """Exports "" (memory), "a" and "b" (files of different sizes)."""
    a, b = os.path.join(d, "a"), os.path.join(d, "b")
    for p, n in ((a, A_SIZE), (b, B_SIZE)):
        with open(p, "wb") as f:
            f.truncate(n)
    return Server(["-f", "memory", "1G", "--export", "a=" + a,
                   "--export", "b=" + b],
                  {"nbdkit": ["file", "dir=" + d]})


def test_list_raw():
    d = tempfile.mkdtemp()
    try:
        list_raw(d)
    finally:
        shutil.rmtree(d)


def list_raw(d):
    with multi_server(d) as s, Raw(s.sock) as r:
        r.handshake()
        reps = r.opt(OPT_LIST)
        eq_rep(reps[-1][0], REP_ACK, "LIST final reply")
        names = []
        for t, p in reps[:-1]:
            eq_rep(t, REP_SERVER, "LIST entry")
            (n,) = struct.unpack(">I", p[:4])
            if n > len(p) - 4:
                raise AssertionError("REP_SERVER name length %d > %d"
                                     % (n, len(p) - 4))
            names.append(p[4:4 + n].decode())
        for want in ("a", "b"):
            if want not in names:
                raise AssertionError("LIST lacks %r: %r" % (want, names))
        # LIST with data is syntactically invalid; the session goes on.
        eq_rep(r.opt_final(OPT_LIST, b"junk"), REP_ERR_INVALID,
               "LIST with data")
        for name, size in (("a", A_SIZE), ("b", B_SIZE)):
            t, info = r.go(name, [], opt=OPT_INFO)
            eq_rep(t, REP_ACK, "INFO " + name)
            eq(struct.unpack(">QH", info[INFO_EXPORT])[0], size,
               "size of " + name)
        t, info = r.go("b", [INFO_NAME], opt=OPT_INFO)
        eq(info.get(INFO_NAME, b"b"), b"b", "canonical name of b")
        # Contexts selected for "b" do not carry over to "a": "A client
        # MUST NOT send NBD_CMD_BLOCK_STATUS unless ... SET_META_CONTEXT
        # ... with the same export name used to enter transmission".
        eq_rep(r.structured_reply(), REP_ACK, "STRUCTURED_REPLY")
        t, ctx = r.set_meta("b", ["base:allocation"])
        eq_rep(t, REP_ACK, "SET_META_CONTEXT for b")
        t, _ = r.go("a")
        eq_rep(t, REP_ACK, "GO a")
        eq(r.size, A_SIZE, "GO a size")
        err, _ = r.cmd(CMD_BLOCK_STATUS, 0, 4096)
        eq(err, EINVAL, "BLOCK_STATUS on a with contexts set for b")
        eq(r.read(0, 512), (0, bytes(512)), "read a")


def test_list_libnbd():
    with main_server() as s:
        h = nbd.NBD()
        h.set_opt_mode(True)
        h.connect_uri(s.uri)
        seen = []
        n = h.opt_list(lambda name, desc: seen.append((name, desc)) or 0)
        eq(n, len(seen), "opt_list count")
        names = [x[0] for x in seen]
        if "" not in names and PEER == "qnbd":
            raise AssertionError("default export not listed: %r" % seen)
        if PEER == "qnbd":
            eq(dict(seen)[""], DESC, "description in LIST")
        h.opt_abort()


def info_checks(info, what):
    if INFO_EXPORT not in info:
        raise AssertionError(what + ": no NBD_INFO_EXPORT")
    eq(len(info[INFO_EXPORT]), 10, what + " NBD_INFO_EXPORT length")
    size, tflags = struct.unpack(">QH", info[INFO_EXPORT])
    eq(size, SIZE, what + " size")
    if not tflags & TF_HAS_FLAGS:
        raise AssertionError(what + ": HAS_FLAGS clear")
    if tflags & TF_READ_ONLY:
        raise AssertionError(what + ": writable export marked read-only")
    if tflags & TF_SEND_DF:
        raise AssertionError(what + ": SEND_DF without structured replies")
    if INFO_NAME in info:
        eq(info[INFO_NAME], b"", what + " canonical name")
    if PEER in ("qnbd", "nbdkit"):
        eq(info.get(INFO_DESCRIPTION), DESC.encode(), what + " description")
    if INFO_BLOCK_SIZE in info:
        eq(len(info[INFO_BLOCK_SIZE]), 12, what + " BLOCK_SIZE length")
        mn, pref, mx = struct.unpack(">III", info[INFO_BLOCK_SIZE])
        for v in (mn, pref):
            if v & (v - 1) or v == 0:
                raise AssertionError("%s: block size %d not a power of 2"
                                     % (what, v))
        # "Block size constraints": min <= 64 KiB, pref >= max(512, min),
        # max a multiple of min, and at least 32 MiB is not an attack.
        if not (mn <= 65536 and pref >= max(512, mn) and mx >= pref
                and mx % mn == 0):
            raise AssertionError("%s: bad block sizes %d %d %d"
                                 % (what, mn, pref, mx))
        if PEER == "qnbd" and mx < 32 * MiB:
            raise AssertionError("%s: max payload %d < 32 MiB" % (what, mx))
    elif PEER == "qnbd":
        raise AssertionError(what + ": qnbd sends NBD_INFO_BLOCK_SIZE")


def test_info_then_go():
    asks = [INFO_NAME, INFO_DESCRIPTION, INFO_BLOCK_SIZE]
    with main_server() as s, Raw(s.sock) as r:
        r.handshake()
        t, info1 = r.go("", asks, opt=OPT_INFO)
        eq_rep(t, REP_ACK, "INFO")
        info_checks(info1, "INFO")
        # INFO leaves us in negotiation: a second INFO and a LIST work.
        t, info2 = r.go("", asks, opt=OPT_INFO)
        eq(info2, info1, "INFO twice")
        eq_rep(r.opt_final(OPT_LIST), REP_ACK, "LIST after INFO")
        t, info3 = r.go("", asks)
        eq_rep(t, REP_ACK, "GO")
        eq(info3, info1, "GO answers like INFO")
        # Now in transmission: a simple-reply read works.
        err, data = r.read(0, 4096)
        eq(err, 0, "read after GO")
        eq(data, bytes(4096), "fresh memory disk reads as zero")


def test_info_go_libnbd():
    with main_server() as s:
        h = nbd.NBD()
        h.set_opt_mode(True)
        h.set_full_info(True)
        h.connect_uri(s.uri)
        h.opt_info()
        a = (h.get_size(), h.is_read_only(), h.can_flush(), h.can_trim(),
             h.can_zero(), h.can_fua(), h.can_multi_conn(),
             h.get_block_size(nbd.SIZE_MINIMUM),
             h.get_block_size(nbd.SIZE_PREFERRED),
             h.get_block_size(nbd.SIZE_MAXIMUM),
             h.get_export_description())
        h.opt_go()
        b = (h.get_size(), h.is_read_only(), h.can_flush(), h.can_trim(),
             h.can_zero(), h.can_fua(), h.can_multi_conn(),
             h.get_block_size(nbd.SIZE_MINIMUM),
             h.get_block_size(nbd.SIZE_PREFERRED),
             h.get_block_size(nbd.SIZE_MAXIMUM),
             h.get_export_description())
        eq(b, a, "opt_info vs opt_go")
        eq(a[0], SIZE, "size")
        eq(a[-1], DESC, "description")
        h.pwrite(b"x" * 512, 0)
        eq(h.pread(512, 0), b"x" * 512, "read back")
        h.shutdown()


def test_unknown_export():
    with main_server() as s, Raw(s.sock) as r:
        r.handshake()
        for opt in (OPT_INFO, OPT_GO):
            t, _ = r.go("no-such-export", [INFO_NAME], opt=opt)
            eq_rep(t, REP_ERR_UNKNOWN, "option %d on an unknown export" % opt)
        # Still negotiating: the default export works.
        t, _ = r.go("")
        eq_rep(t, REP_ACK, "GO after errors")
    with main_server() as s:
        h = nbd.NBD()
        h.set_opt_mode(True)
        h.connect_uri(s.uri)
        h.set_export_name("no-such-export")
        libnbd_errno(h.opt_info)
        libnbd_errno(h.opt_go)
        h.set_export_name("")
        h.opt_go()
        eq(h.get_size(), SIZE, "size after failed GO")
        h.shutdown()


def test_info_malformed():
    with main_server() as s, Raw(s.sock) as r:
        r.handshake()
        good = info_data("", [INFO_NAME])
        # Name length pointing past the option's end.
        bad = struct.pack(">I", 100) + b"\0\0"
        eq_rep(r.opt_final(OPT_INFO, bad), REP_ERR_INVALID,
               "INFO with name length beyond the data")
        # Request count promising more items than were sent.
        bad = struct.pack(">IH", 0, 5) + struct.pack(">H", INFO_NAME)
        eq_rep(r.opt_final(OPT_GO, bad), REP_ERR_INVALID,
               "GO with too few info requests")
        # Trailing garbage after the requests.
        eq_rep(r.opt_final(OPT_INFO, good + b"xx"), REP_ERR_INVALID,
               "INFO with trailing bytes")
        eq_rep(r.opt_final(OPT_INFO, b""), REP_ERR_INVALID, "empty INFO")
        # Unknown info requests are ignored, not errors.
        t, info = r.go("", [INFO_NAME, 0x7777], opt=OPT_INFO)
        eq_rep(t, REP_ACK, "INFO with an unknown info request")
        t, _ = r.go("")
        eq_rep(t, REP_ACK, "GO after malformed options")


def test_structured_reply():
    with main_server() as s, Raw(s.sock) as r:
        r.handshake()
        eq_rep(r.opt_final(OPT_STRUCTURED_REPLY, b"x"), REP_ERR_INVALID,
               "STRUCTURED_REPLY with data")
        eq_rep(r.structured_reply(), REP_ACK, "STRUCTURED_REPLY")
        t, info = r.go("", [])
        eq_rep(t, REP_ACK, "GO")
        if not r.tflags & TF_SEND_DF and PEER == "qnbd":
            raise AssertionError("qnbd should offer DF with structured "
                                 "replies")
        err, chunks = r.cmd(CMD_READ, 0, 1024)
        eq(err, 0, "read")
        for c in chunks:
            eq(c["magic"], STRUCTURED_REPLY_MAGIC,
               "READ reply magic with structured replies")


def test_meta_context():
    with main_server() as s, Raw(s.sock) as r:
        r.handshake()
        # SET before STRUCTURED_REPLY: "server SHOULD send ERR_INVALID".
        t, ctx = r.set_meta("", ["base:allocation"])
        eq_rep(t, REP_ERR_INVALID, "SET_META_CONTEXT before STRUCTURED_REPLY")
        eq(ctx, {}, "contexts selected by a failed SET")
        eq_rep(r.structured_reply(), REP_ACK, "STRUCTURED_REPLY")
        # LIST with no query: every context, at least base:allocation.
        t, ctx = r.set_meta("", [], opt=OPT_LIST_META_CONTEXT)
        eq_rep(t, REP_ACK, "LIST_META_CONTEXT")
        if "base:allocation" not in ctx:
            raise AssertionError("base:allocation not listed: %r" % ctx)
        # "The metadata context ID in these replies is reserved and
        # SHOULD be set to zero".
        eq(set(ctx.values()), {0}, "context ids in LIST_META_CONTEXT")
        # A bare namespace lists every context in it.
        t, ctx = r.set_meta("", ["base:"], opt=OPT_LIST_META_CONTEXT)
        eq((rep_name(t), "base:allocation" in ctx), ("ACK", True),
           "LIST_META_CONTEXT base:")
        # An unknown export is an error, for LIST and SET (as qemu-nbd
        # does; the spec names no reply, and nbdkit 1.32 ACKs).
        for opt in (OPT_LIST_META_CONTEXT, OPT_SET_META_CONTEXT):
            if PEER == "nbdkit":
                break
            t, ctx = r.set_meta("no-such-export", ["base:allocation"],
                                opt=opt)
            if not t & REP_ERR:
                raise AssertionError("meta context option %d on an unknown "
                                     "export: %s" % (opt, rep_name(t)))
        # Unknown namespaces are ignored (ACK with no context).
        t, ctx = r.set_meta("", ["x-nosuch:thing"],
                            opt=OPT_LIST_META_CONTEXT)
        eq_rep(t, REP_ACK, "LIST of an unknown namespace")
        eq(ctx, {}, "contexts for an unknown namespace")
        t, ctx = r.set_meta("", ["base:allocation", "x-nosuch:thing"])
        eq_rep(t, REP_ACK, "SET_META_CONTEXT")
        eq(list(ctx), ["base:allocation"], "selected contexts")
        # Truncated query data.
        bad = meta_data("", ["base:allocation"])[:-3]
        eq_rep(r.opt_final(OPT_SET_META_CONTEXT, bad), REP_ERR_INVALID,
               "SET_META_CONTEXT with a truncated query")
        # Whether a failed SET keeps the earlier selection is not
        # specified, so select again before GO.
        t, ctx = r.set_meta("", ["base:allocation"])
        cid = ctx["base:allocation"]
        t, _ = r.go("")
        eq_rep(t, REP_ACK, "GO")
        err, chunks = r.cmd(CMD_BLOCK_STATUS, 0, 1 * MiB)
        eq(err, 0, "block status")
        bs = [c for c in chunks if c["type"] == REPLY_TYPE_BLOCK_STATUS]
        eq(len(bs), 1, "block status chunks")
        eq(struct.unpack(">I", bs[0]["payload"][:4])[0], cid, "context id")
    # SET with no query selects nothing: BLOCK_STATUS is then invalid.
    with main_server() as s, Raw(s.sock) as r:
        r.handshake()
        r.structured_reply()
        t, ctx = r.set_meta("", [])
        eq((rep_name(t), ctx), ("ACK", {}), "SET_META_CONTEXT of nothing")
        eq_rep(r.go("")[0], REP_ACK, "GO")
        eq(r.cmd(CMD_BLOCK_STATUS, 0, 4096)[0], EINVAL,
           "BLOCK_STATUS with an empty selection")


def test_meta_context_libnbd():
    with main_server() as s:
        h = nbd.NBD()
        h.set_opt_mode(True)
        h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
        h.connect_uri(s.uri)
        got = []
        h.opt_list_meta_context(lambda n: got.append(n) or 0)
        if nbd.CONTEXT_BASE_ALLOCATION not in got:
            raise AssertionError("libnbd lists %r" % got)
        h.opt_go()
        eq(h.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION), True,
           "base:allocation negotiated")
        h.shutdown()
    # Without structured replies libnbd skips SET_META_CONTEXT; the
    # export still works and no context is active.
    with main_server() as s:
        h = nbd.NBD()
        h.set_request_structured_replies(False)
        h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
        h.connect_uri(s.uri)
        eq(h.get_structured_replies_negotiated(), False, "SR negotiated")
        eq(h.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION), False,
           "context without SR")
        h.pread(512, 0)
        h.shutdown()


def test_starttls():
    with main_server() as s, Raw(s.sock) as r:
        r.handshake()
        t = r.opt_final(OPT_STARTTLS)
        # NOTLS mode: ERR_POLICY or ERR_UNSUP, never TLS_REQD or ACK.
        if t not in (REP_ERR_POLICY, REP_ERR_UNSUP):
            raise AssertionError("STARTTLS got %s" % rep_name(t))
        t = r.opt_final(OPT_STARTTLS, b"x")
        if t not in (REP_ERR_INVALID, REP_ERR_POLICY, REP_ERR_UNSUP):
            raise AssertionError("STARTTLS with data got %s" % rep_name(t))
        t, _ = r.go("")
        eq_rep(t, REP_ACK, "GO after refused STARTTLS")
    with main_server() as s:
        h = nbd.NBD()
        h.set_tls(nbd.TLS_ALLOW)
        h.connect_uri(s.uri)
        eq(h.get_tls_negotiated(), False, "TLS negotiated")
        h.pread(512, 0)
        h.shutdown()
        h = nbd.NBD()
        h.set_tls(nbd.TLS_REQUIRE)
        libnbd_errno(h.connect_uri, s.uri)


def test_abort():
    with main_server() as s:
        with Raw(s.sock) as r:
            r.handshake()
            eq_rep(r.opt_final(OPT_ABORT), REP_ACK, "ABORT")
            if not r.closed_by_server():
                raise AssertionError("server kept the session after ABORT")
        # A client may also just send ABORT and hang up.
        with Raw(s.sock) as r:
            r.handshake()
            r.send_opt(OPT_ABORT)
        h = nbd.NBD()
        h.set_opt_mode(True)
        h.connect_uri(s.uri)
        h.opt_abort()
        eq(h.aio_is_closed(), True, "closed after opt_abort")
        check_serves(s)


def test_export_name():
    with main_server() as s:
        with Raw(s.sock) as r:
            r.handshake(FLAG_FIXED_NEWSTYLE)  # padding expected
            r.export_name(b"")
            eq(r.size, SIZE, "EXPORT_NAME size")
            err, data = r.read(0, 512)
            eq(err, 0, "read after EXPORT_NAME with padding")
            r.disc()
            if not r.closed_by_server():
                raise AssertionError("DISC did not close")
        with Raw(s.sock) as r:
            r.handshake(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES)
            r.export_name(b"")
            err, data = r.read(0, 512)
            eq(err, 0, "read after EXPORT_NAME without padding")
        # Unknown export: no error reply is possible; hard close.
        with Raw(s.sock) as r:
            r.handshake()
            r.send_opt(OPT_EXPORT_NAME, b"no-such-export")
            if not r.closed_by_server():
                raise AssertionError("EXPORT_NAME of an unknown export "
                                     "did not close the session")
        # Plain (non-fixed) newstyle: client flags 0, EXPORT_NAME only.
        h = nbd.NBD()
        h.set_handshake_flags(0)
        h.connect_uri(s.uri)
        eq(h.get_size(), SIZE, "size via non-fixed newstyle")
        h.pwrite(b"y" * 512, 4096)
        eq(h.pread(512, 4096), b"y" * 512, "data via non-fixed newstyle")
        h.shutdown()


def test_unknown_option():
    with main_server() as s, Raw(s.sock) as r:
        r.handshake()
        for opt, data in ((4, b""), (99, b"some data"),
                          (0x7FFFFFFF, b"x" * 100), (0, b"")):
            eq_rep(r.opt_final(opt, data), REP_ERR_UNSUP,
                   "unknown option %d" % opt)
        t, _ = r.go("")
        eq_rep(t, REP_ACK, "GO after unknown options")
        err, data = r.read(0, 512)
        eq(err, 0, "read after unknown options")


def test_extended_headers_option():
    with main_server() as s, Raw(s.sock) as r:
        r.handshake()
        t = r.opt_final(OPT_EXTENDED_HEADERS, b"x")
        if PEER == "qnbd":
            eq_rep(t, REP_ERR_INVALID, "EXTENDED_HEADERS with data")
        t = r.opt_final(OPT_EXTENDED_HEADERS)
        if PEER == "qnbd":
            eq_rep(t, REP_ACK, "EXTENDED_HEADERS")
        elif t not in (REP_ACK, REP_ERR_UNSUP):
            raise AssertionError("EXTENDED_HEADERS got %s" % rep_name(t))
        # Whatever the answer, negotiation continues.
        t2, _ = r.go("", [])
        eq_rep(t2, REP_ACK, "GO after EXTENDED_HEADERS")
        r.ext = (t == REP_ACK)
        r.sr = r.ext
        err, data = r.read(0, 512)
        eq(err, 0, "read")


if __name__ == "__main__":
    run([test_list_raw, test_list_libnbd, test_info_then_go,
         test_info_go_libnbd, test_unknown_export, test_info_malformed,
         test_structured_reply, test_meta_context, test_meta_context_libnbd,
         test_starttls, test_abort, test_export_name, test_unknown_option,
         test_extended_headers_option])
