# Shared helpers for the functional protocol tests: starting the server
# under test (qnbd, or nbdkit/qemu-nbd to validate the tests themselves),
# a raw NBD wire client for exact protocol checks, and a tiny harness
# that runs every check and reports all failures, not just the first.
#
# The server under test is $QNBD; setting QNBD_PEER=nbdkit runs the same
# checks against Debian's nbdkit instead (checks that need a qnbd-only
# option are skipped there), which is how these tests were validated.

import errno
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback

PEER = os.environ.get("QNBD_PEER", "qnbd")

try:  # Debian's python3-libnbd; like lib.sh's `require`
    import nbd
except ImportError:
    if os.environ.get("QNBD_REQUIRE_ALL") == "1":
        print("FAIL: required but missing: python3-libnbd (nbd module)")
        sys.exit(1)
    print("SKIP: python3-libnbd (nbd module) is not installed")
    sys.exit(77)

# --- Protocol constants (doc/proto.md of the NBD project, "Values") ---
NBDMAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
OPT_REPLY_MAGIC = 0x3E889045565A9
REQUEST_MAGIC = 0x25609513
EXT_REQUEST_MAGIC = 0x21E41C71
SIMPLE_REPLY_MAGIC = 0x67446698
STRUCTURED_REPLY_MAGIC = 0x668E33EF
EXT_REPLY_MAGIC = 0x6E8A278C

FLAG_FIXED_NEWSTYLE = 1 << 0
FLAG_NO_ZEROES = 1 << 1

OPT_EXPORT_NAME = 1
OPT_ABORT = 2
OPT_LIST = 3
OPT_STARTTLS = 5
OPT_INFO = 6
OPT_GO = 7
OPT_STRUCTURED_REPLY = 8
OPT_LIST_META_CONTEXT = 9
OPT_SET_META_CONTEXT = 10
OPT_EXTENDED_HEADERS = 11

REP_ACK = 1
REP_SERVER = 2
REP_INFO = 3
REP_META_CONTEXT = 4
REP_ERR = 1 << 31
REP_ERR_UNSUP = REP_ERR + 1
REP_ERR_POLICY = REP_ERR + 2
REP_ERR_INVALID = REP_ERR + 3
REP_ERR_PLATFORM = REP_ERR + 4
REP_ERR_TLS_REQD = REP_ERR + 5
REP_ERR_UNKNOWN = REP_ERR + 6
REP_ERR_SHUTDOWN = REP_ERR + 7
REP_ERR_BLOCK_SIZE_REQD = REP_ERR + 8
REP_ERR_TOO_BIG = REP_ERR + 9
REP_ERR_EXT_HEADER_REQD = REP_ERR + 10

INFO_EXPORT = 0
INFO_NAME = 1
INFO_DESCRIPTION = 2
INFO_BLOCK_SIZE = 3

TF_HAS_FLAGS = 1 << 0
TF_READ_ONLY = 1 << 1
TF_SEND_FLUSH = 1 << 2
TF_SEND_FUA = 1 << 3
TF_SEND_TRIM = 1 << 5
TF_SEND_WRITE_ZEROES = 1 << 6
TF_SEND_DF = 1 << 7

CMD_READ = 0
CMD_WRITE = 1
CMD_DISC = 2
CMD_FLUSH = 3
CMD_TRIM = 4
CMD_CACHE = 5
CMD_WRITE_ZEROES = 6
CMD_BLOCK_STATUS = 7

CMD_FLAG_FUA = 1 << 0
CMD_FLAG_NO_HOLE = 1 << 1
CMD_FLAG_DF = 1 << 2
CMD_FLAG_REQ_ONE = 1 << 3
CMD_FLAG_FAST_ZERO = 1 << 4
CMD_FLAG_PAYLOAD_LEN = 1 << 5

REPLY_FLAG_DONE = 1
REPLY_TYPE_NONE = 0
REPLY_TYPE_OFFSET_DATA = 1
REPLY_TYPE_OFFSET_HOLE = 2
REPLY_TYPE_BLOCK_STATUS = 5
REPLY_TYPE_BLOCK_STATUS_EXT = 6
REPLY_TYPE_ERROR = (1 << 15) + 1
REPLY_TYPE_ERROR_OFFSET = (1 << 15) + 2

STATE_HOLE = 1
STATE_ZERO = 2

# Wire error values ("Error values").
EPERM, EIO, ENOMEM, EINVAL, ENOSPC, EOVERFLOW, ENOTSUP, ESHUTDOWN = (
    1, 5, 12, 22, 28, 75, 95, 108)

MiB = 1 << 20
GiB = 1 << 30


class Skip(Exception):
    """A check that cannot run against this peer."""


class ProtocolError(Exception):
    pass


def spec_violation(msg):
    """A failed spec check: an error for qnbd, a note for a validation
    peer whose known deviation the test documents."""
    if PEER == "qnbd":
        raise AssertionError(msg)
    print("NOTE: %s deviates from the spec: %s" % (PEER, msg), flush=True)


def only_qnbd(why):
    if PEER != "qnbd":
        raise Skip("%s: qnbd-only (%s)" % (PEER, why))


# --- Server under test ---

class Server:
    """Run one server on a private Unix socket until stop().

    qnbd_args are qnbd's arguments (without -U); peer_args maps a peer
    name ("nbdkit", "qemu-nbd") to that peer's equivalent argv tail, or
    is missing when the configuration is qnbd-only (start() skips).
    """

    def __init__(self, qnbd_args, peer_args=None, expect_clean_exit=True,
                 tcp=False):
        self.tcp = tcp
        self.port = free_port() if tcp else None
        self.qnbd_args = qnbd_args if callable(qnbd_args) else \
            list(qnbd_args)
        self.peer_args = peer_args or {}
        self.expect_clean_exit = expect_clean_exit
        self.dir = tempfile.mkdtemp(prefix="qnbd-func.")
        self.sock = os.path.join(self.dir, "nbd.sock")
        self.log = os.path.join(self.dir, "server.log")
        self.proc = None

    def argv(self):
        if PEER == "qnbd":
            qnbd = os.environ.get("QNBD")
            if not qnbd:
                raise Skip("QNBD is not set")
            args = self.qnbd_args
            if callable(args):
                args = args(self.dir)
            if self.tcp:
                return [qnbd, "-p", str(self.port), "-b", "127.0.0.1"] + args
            return [qnbd, "-U", self.sock] + args
        if PEER not in self.peer_args:
            raise Skip("no %s equivalent of qnbd %s" % (PEER, self.qnbd_args))
        tail = self.peer_args[PEER]
        if callable(tail):
            tail = tail(self.dir)
        if PEER == "nbdkit" and self.tcp:
            return ["nbdkit", "-f", "-p", str(self.port), "-i", "127.0.0.1"] \
                + tail
        if PEER == "nbdkit":
            return ["nbdkit", "-f", "-U", self.sock] + tail
        if PEER == "qemu-nbd" and self.tcp:
            return ["qemu-nbd", "-p", str(self.port), "-b", "127.0.0.1",
                    "-t", "-e", "0"] + tail
        if PEER == "qemu-nbd":
            return ["qemu-nbd", "-k", self.sock, "-t", "-e", "0"] + tail
        raise Skip("unknown QNBD_PEER " + PEER)

    def start(self):
        try:
            return self._start()
        except BaseException:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
            shutil.rmtree(self.dir, ignore_errors=True)
            raise

    def _start(self):
        argv = self.argv()
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=logf, stderr=logf)
        logf.close()
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("server exited with %d at start: %s"
                                     % (self.proc.returncode, self.tail()))
            if self.tcp or os.path.exists(self.sock):
                try:
                    s = socket.socket(socket.AF_INET if self.tcp
                                      else socket.AF_UNIX)
                    s.connect(self.addr)
                    s.close()
                    return self
                except OSError:
                    pass
            time.sleep(0.05)
        raise AssertionError("server did not listen on %s" % self.sock)

    @property
    def addr(self):
        """What Raw() connects to: a socket path or (host, port)."""
        return ("127.0.0.1", self.port) if self.tcp else self.sock

    @property
    def uri(self):
        return self.uri_for("")

    def uri_for(self, name):
        if self.tcp:
            return "nbd://127.0.0.1:%d/%s" % (self.port, name)
        return "nbd+unix:///%s?socket=%s" % (name, self.sock)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def tail(self, n=30):
        try:
            with open(self.log, "rb") as f:
                lines = f.read().decode(errors="replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError:
            return ""

    def stop(self):
        rc = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                rc = self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("server ignored SIGTERM for 10 s")
        elif self.proc is not None:
            rc = self.proc.returncode
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)
        if PEER == "qnbd" and self.expect_clean_exit and rc not in (0, None):
            raise AssertionError("qnbd exited with %s" % rc)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def sparse_file(d, size):
    path = os.path.join(d, "disk.raw")
    with open(path, "wb") as f:
        f.truncate(parse_size(size))
    return path


def qemu_sparse(size, extra=()):
    """qemu-nbd arguments serving a fresh sparse raw file of size."""
    return lambda d: list(extra) + ["-f", "raw", "--discard=unmap",
                                    sparse_file(d, size)]


def file_server(size="1G", extra=()):
    """A fresh sparse raw file of size served by qnbd (or nbdkit file,
    or qemu-nbd)."""
    extra = list(extra)
    return Server(lambda d: extra + [sparse_file(d, size)],
                  {"nbdkit": lambda d: extra + ["file", sparse_file(d, size)],
                   "qemu-nbd": qemu_sparse(size, extra)})


def parse_size(size):
    units = {"K": 1 << 10, "M": MiB, "G": GiB}
    return int(size[:-1]) * units[size[-1]] if size[-1] in units \
        else int(size)


def libnbd_connect(uri, **kw):
    """A libnbd handle connected to uri (Debian's python3-libnbd)."""
    h = nbd.NBD()
    for k, v in kw.items():
        getattr(h, "set_" + k)(v)
    h.connect_uri(uri)
    return h


# --- Raw wire client ---

class Raw:
    """A hand-driven NBD client: every byte it sends is chosen by the test."""

    def __init__(self, addr, timeout=10):
        """addr: a Unix socket path, or a (host, port) tuple."""
        tcp = isinstance(addr, tuple)
        self.s = socket.socket(socket.AF_INET if tcp else socket.AF_UNIX,
                               socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(addr)
        self.sr = False  # structured replies negotiated
        self.ext = False  # extended headers negotiated
        self.cookie = 0
        self.server_flags = None

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def send(self, data):
        self.s.sendall(data)

    def recv_exact(self, n):
        buf = bytearray(n)
        view, got = memoryview(buf), 0
        while got < n:
            k = self.s.recv_into(view[got:], n - got)
            if k == 0:
                raise EOFError("server closed after %d of %d bytes"
                               % (got, n))
            got += k
        return bytes(buf)

    def closed_by_server(self, timeout=5):
        """True if the server closes the connection within timeout
        (reading and discarding anything it still sends)."""
        self.s.settimeout(timeout)
        try:
            while True:
                d = self.s.recv(65536)
                if not d:
                    return True
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True

    # Handshake ("Newstyle negotiation").
    def greeting(self):
        magic, opt, flags = struct.unpack(">QQH", self.recv_exact(18))
        if magic != NBDMAGIC or opt != IHAVEOPT:
            raise ProtocolError("bad greeting %x %x" % (magic, opt))
        self.server_flags = flags
        return flags

    def handshake(self, client_flags=FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES):
        flags = self.greeting()
        if not flags & FLAG_FIXED_NEWSTYLE:
            raise ProtocolError("server is not fixed newstyle")
        self.no_zeroes = bool(client_flags & FLAG_NO_ZEROES)
        self.send(struct.pack(">I", client_flags))
        return flags

    def send_opt(self, opt, data=b"", length=None):
        if length is None:
            length = len(data)
        self.send(struct.pack(">QII", IHAVEOPT, opt, length) + data)

    def recv_opt_reply(self, opt=None):
        magic, ropt, rtype, rlen = struct.unpack(">QIII", self.recv_exact(20))
        if magic != OPT_REPLY_MAGIC:
            raise ProtocolError("bad option reply magic %x" % magic)
        if opt is not None and ropt != opt:
            raise ProtocolError("reply for option %d, expected %d"
                                % (ropt, opt))
        if rlen > 64 * MiB:
            raise ProtocolError("option reply of %d bytes" % rlen)
        return rtype, self.recv_exact(rlen)

    def opt(self, opt, data=b""):
        """Send one option, return its list of (type, payload) replies
        up to and including the final ACK or error."""
        self.send_opt(opt, data)
        replies = []
        while True:
            rtype, payload = self.recv_opt_reply(opt)
            replies.append((rtype, payload))
            if rtype == REP_ACK or rtype & REP_ERR:
                return replies
            if len(replies) > 10000:
                raise ProtocolError("endless option replies")

    def opt_final(self, opt, data=b""):
        return self.opt(opt, data)[-1][0]

    def structured_reply(self):
        t = self.opt_final(OPT_STRUCTURED_REPLY)
        if t == REP_ACK:
            self.sr = True
        return t

    def set_meta(self, name, queries, opt=OPT_SET_META_CONTEXT):
        data = meta_data(name, queries)
        reps = self.opt(opt, data)
        ctx = {}
        for rtype, p in reps:
            if rtype == REP_META_CONTEXT:
                (cid,) = struct.unpack(">I", p[:4])
                ctx[p[4:].decode()] = cid
        return reps[-1][0], ctx

    def go(self, name=b"", infos=(), opt=OPT_GO):
        """NBD_OPT_GO/INFO; returns (final reply type, {info type: data})."""
        reps = self.opt(opt, info_data(name, infos))
        info = {}
        for rtype, p in reps:
            if rtype == REP_INFO:
                (itype,) = struct.unpack(">H", p[:2])
                info[itype] = p[2:]
        if reps[-1][0] == REP_ACK and opt == OPT_GO:
            size, tflags = struct.unpack(">QH", info[INFO_EXPORT])
            self.size, self.tflags = size, tflags
        return reps[-1][0], info

    def export_name(self, name=b""):
        self.send_opt(OPT_EXPORT_NAME, name)
        self.size, self.tflags = struct.unpack(">QH", self.recv_exact(10))
        if not self.no_zeroes:
            self.recv_exact(124)

    # Transmission.
    def request(self, cmd, offset=0, length=0, flags=0, payload=b"",
                cookie=None):
        if cookie is None:
            self.cookie += 1
            cookie = self.cookie
        if self.ext:
            hdr = struct.pack(">IHHQQQ", EXT_REQUEST_MAGIC, flags, cmd,
                              cookie, offset, length)
        else:
            hdr = struct.pack(">IHHQQI", REQUEST_MAGIC, flags, cmd, cookie,
                              offset, length)
        self.send(hdr + payload)
        return cookie

    def recv_reply(self, read_len=None):
        """One reply message: a dict with magic, cookie, error/type, flags,
        payload.  read_len is the data length of a simple read reply."""
        (magic,) = struct.unpack(">I", self.recv_exact(4))
        if magic == SIMPLE_REPLY_MAGIC:
            err, cookie = struct.unpack(">IQ", self.recv_exact(12))
            data = b""
            if read_len and err == 0:
                data = self.recv_exact(read_len)
            return dict(magic=magic, error=err, cookie=cookie, payload=data,
                        flags=REPLY_FLAG_DONE, type=None)
        if magic == STRUCTURED_REPLY_MAGIC:
            flags, rtype, cookie, length = struct.unpack(
                ">HHQI", self.recv_exact(16))
        elif magic == EXT_REPLY_MAGIC:
            flags, rtype, cookie, off, length = struct.unpack(
                ">HHQQQ", self.recv_exact(28))
        else:
            raise ProtocolError("bad reply magic %#x" % magic)
        if length > 64 * MiB:
            raise ProtocolError("reply chunk of %d bytes" % length)
        payload = self.recv_exact(length)
        r = dict(magic=magic, flags=flags, type=rtype, cookie=cookie,
                 payload=payload, error=0)
        if rtype & (1 << 15):
            r["error"], mlen = struct.unpack(">IH", payload[:6])
            r["message"] = payload[6:6 + mlen]
        return r

    def recv_all_chunks(self, cookie, read_len=None):
        """Replies for one request (only that one in flight)."""
        chunks = []
        while True:
            r = self.recv_reply(read_len)
            if r["cookie"] != cookie:
                raise ProtocolError("cookie %d, expected %d"
                                    % (r["cookie"], cookie))
            chunks.append(r)
            if r["flags"] & REPLY_FLAG_DONE:
                return chunks

    def cmd(self, cmd, offset=0, length=0, flags=0, payload=b""):
        """Send one request and return (error, chunks)."""
        c = self.request(cmd, offset, length, flags, payload)
        chunks = self.recv_all_chunks(
            c, read_len=length if cmd == CMD_READ else None)
        err = 0
        for ch in chunks:
            if ch["error"]:
                err = ch["error"]
        return err, chunks

    def read(self, offset, length, flags=0):
        """READ; returns (error, data) with holes filled in."""
        err, chunks = self.cmd(CMD_READ, offset, length, flags)
        if err:
            return err, None
        if chunks[0]["magic"] == SIMPLE_REPLY_MAGIC:
            return 0, chunks[0]["payload"]
        buf = bytearray(length)
        covered = 0
        for ch in chunks:
            p = ch["payload"]
            if ch["type"] == REPLY_TYPE_OFFSET_DATA:
                (o,) = struct.unpack(">Q", p[:8])
                d = p[8:]
            elif ch["type"] == REPLY_TYPE_OFFSET_HOLE:
                o, n = struct.unpack(">QI", p)
                d = bytes(n)
            else:
                continue
            if o < offset or o + len(d) > offset + length:
                raise ProtocolError("chunk outside the request")
            buf[o - offset:o - offset + len(d)] = d
            covered += len(d)
        if covered != length:
            raise ProtocolError("read chunks cover %d of %d bytes"
                                % (covered, length))
        return 0, bytes(buf)

    def disc(self):
        self.request(CMD_DISC)


def info_data(name, infos):
    if isinstance(name, str):
        name = name.encode()
    return (struct.pack(">I", len(name)) + name +
            struct.pack(">H", len(infos)) +
            b"".join(struct.pack(">H", i) for i in infos))


def meta_data(name, queries):
    if isinstance(name, str):
        name = name.encode()
    d = struct.pack(">I", len(name)) + name + struct.pack(">I", len(queries))
    for q in queries:
        if isinstance(q, str):
            q = q.encode()
        d += struct.pack(">I", len(q)) + q
    return d


def raw_go(path, name=b"", sr=True, meta=()):
    """A Raw client through the handshake into transmission."""
    r = Raw(path)
    r.handshake()
    if sr:
        if r.structured_reply() != REP_ACK:
            raise ProtocolError("STRUCTURED_REPLY refused")
    if meta:
        t, ctx = r.set_meta(name, meta)
        if t != REP_ACK:
            raise ProtocolError("SET_META_CONTEXT failed: %#x" % t)
        r.contexts = ctx
    t, info = r.go(name, [INFO_BLOCK_SIZE])
    if t != REP_ACK:
        raise ProtocolError("GO failed: %#x" % t)
    return r


def check_serves(server, name="", offset=0, expect=None):
    """The server still answers a normal libnbd client (and the data at
    offset is expect, when given).  Connecting is retried for a few
    seconds: a server at its connection limit may still be freeing the
    slot of a client that just left."""
    if not server.alive():
        raise AssertionError("server died: " + server.tail())
    deadline = time.time() + 5
    while True:
        try:
            h = libnbd_connect(server.uri_for(name))
            break
        except nbd.Error:
            if time.time() > deadline or not server.alive():
                raise
            time.sleep(0.1)
    try:
        if expect is not None:
            got = h.pread(len(expect), offset)
            if got != expect:
                raise AssertionError("data changed at %d" % offset)
        else:
            h.pread(512, 0)
    finally:
        h.shutdown()


# --- Harness ---

def eq(got, want, what):
    if got != want:
        raise AssertionError("%s: got %r, expected %r" % (what, got, want))


def rep_name(t):
    names = {REP_ACK: "ACK", REP_SERVER: "SERVER", REP_INFO: "INFO",
             REP_META_CONTEXT: "META_CONTEXT"}
    for k, v in list(globals().items()):
        if k.startswith("REP_ERR_") and v == t:
            return k[4:]
    return names.get(t, "%#x" % t)


def eq_rep(got, want, what):
    if got != want:
        raise AssertionError("%s: got %s, expected %s"
                             % (what, rep_name(got), rep_name(want)))


def run(tests):
    """Run every test function; print a line per test; exit 0 if all
    passed, 77 if none ran, 1 otherwise."""
    failed, ran = [], 0
    for t in tests:
        name = t.__name__
        t0 = time.time()
        try:
            t()
            ran += 1
            print("PASS %s (%.1f s)" % (name, time.time() - t0), flush=True)
        except Skip as e:
            print("SKIP %s: %s" % (name, e), flush=True)
        except Exception as e:  # report every failure, keep going
            ran += 1
            failed.append(name)
            print("FAIL %s: %s" % (name, e), flush=True)
            traceback.print_exc(file=sys.stdout)
    if failed:
        print("%d failed: %s" % (len(failed), " ".join(failed)))
        sys.exit(1)
    if ran == 0:
        sys.exit(77)
    sys.exit(0)


def libnbd_errno(fn, *a):
    """Call a libnbd method that must fail; return its errno."""
    try:
        fn(*a)
    except nbd.Error as e:
        return e.errnum
    raise AssertionError("%s%r succeeded, expected an error"
                         % (getattr(fn, "__name__", fn), a))


def errname(e):
    return errno.errorcode.get(e, str(e)) if e else "success"
