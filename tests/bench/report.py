#!/usr/bin/python3
"""Figures for bench.sh: reads fio's JSON, probes an export, prints the tables.

Not a test on its own (tests/bench/CMakeLists.txt registers bench.sh only).

  report.py parse FIO.json RW          -> "IOPS BW_BYTES" of the one job
  report.py probe URI RAW [write]      -> exit 0 if the export shows RAW's
                                          data (and takes writes)
  report.py summary ROWS RESULTS N SECONDS
                                       -> tables and BENCH lines; exit 1
                                          unless every server completed every
                                          row N times
"""
import json
import statistics
import sys


def parse(path, rw):
    """Print IOPS and bytes/s of the single fio job; fail on fio errors."""
    with open(path) as f:
        job = json.load(f)["jobs"][0]
    side = job["read" if rw in ("read", "randread") else "write"]
    if job.get("error", 0) != 0 or side["io_bytes"] <= 0:
        sys.exit(f"fio error {job.get('error')} io_bytes {side['io_bytes']}")
    print(f"{side['iops']:.1f}\t{side['bw_bytes']}")


def probe(uri, raw, write):
    """Compare 1 MiB at the start and middle of the export with RAW; with
    WRITE, also write 64 KiB there and read it back."""
    import nbd  # Debian's python3-libnbd

    h = nbd.NBD()
    h.connect_uri(uri)
    size = h.get_size()
    with open(raw, "rb") as f:
        for off in (0, size // 2 & ~0xFFFFF):
            f.seek(off)
            if h.pread(1 << 20, off) != f.read(1 << 20):
                sys.exit(f"{uri}: data differs from {raw} at offset {off}")
    if write:
        if h.is_read_only():
            sys.exit(f"{uri}: export is read-only")
        data = bytes(range(256)) * 256
        h.pwrite(data, size // 2)
        if h.pread(len(data), size // 2) != data:
            sys.exit(f"{uri}: a write did not read back")
    h.shutdown()


class Stat:
    """Medians over one server's runs of one row."""

    def __init__(self, samples, runtime):
        # samples: [(iops, bytes/s, server CPU seconds over the run)]
        self.runs = len(samples)
        self.iops = statistics.median(s[0] for s in samples)
        self.mbps = statistics.median(s[1] for s in samples) / 1e6
        # Server CPU time per request, in microseconds: less sensitive to
        # a busy machine than throughput is.
        self.cpu_us = statistics.median(
            s[2] * 1e6 / (s[0] * runtime) if s[0] else 0.0 for s in samples)
        # Spread of the runs around the median, to judge the noise.
        lo, hi = min(s[0] for s in samples), max(s[0] for s in samples)
        self.spread = (hi - lo) / self.iops * 100 if self.iops else 0.0


def load(rows_path, results_path):
    rows = []  # (id, [servers], description)
    with open(rows_path) as f:
        for line in f:
            rid, srv, desc = line.rstrip("\n").split("\t")
            rows.append((rid, [s for s in srv.split(",") if s], desc))
    runs = {}  # (row, server) -> [(iops, bw, cpu)]
    failed = {}  # (row, server) -> [status]
    with open(results_path) as f:
        for line in f:
            rid, srv, _rnd, status, *fig = line.rstrip("\n").split("\t")
            if status == "ok":
                runs.setdefault((rid, srv), []).append(tuple(map(float, fig)))
            else:
                failed.setdefault((rid, srv), []).append(status)
    return rows, runs, failed


def print_tables(rows, med, lines):
    """One table per row set; returns the peers seen, in order."""
    peers, current = [], None
    for rid, servers, desc in rows:
        rset, job = rid.split("/", 1)
        if rset != current:
            current = rset
            print(f"\n{rset}: {desc}")
            print(f"  {'job':<18} {'server':<9} {'IOPS':>10} {'MB/s':>9}"
                  f" {'spread':>7} {'CPU us/IO':>10} {'qnbd/server':>12}")
        for n, s in enumerate(servers):
            if s != "qnbd" and s not in peers:
                peers.append(s)
            name = "" if n else job
            if (rid, s) not in med:
                print(f"  {name:<18} {s:<9} {'FAILED':>10}")
                continue
            m = med[rid, s]
            ratio = ""
            if s != "qnbd" and (rid, "qnbd") in med:
                ratio = f"{med[rid, 'qnbd'].iops / m.iops:.2f}"
            print(f"  {name:<18} {s:<9} {m.iops:>10,.0f} {m.mbps:>9.1f}"
                  f" {m.spread:>6.0f}% {m.cpu_us:>10.1f} {ratio:>12}")
            lines.append(f"BENCH row={rid} server={s} iops={m.iops:.0f}"
                         f" mbps={m.mbps:.1f} cpu_us_per_io={m.cpu_us:.2f}"
                         f" runs={m.runs} spread_pct={m.spread:.1f}")
    return peers


def print_ratios(rows, med, peers, lines):
    """The matrix of qnbd / peer, for throughput and for CPU per I/O."""
    pairs = {}
    for rid, servers, _ in rows:
        for p in peers:
            if p in servers and (rid, p) in med and (rid, "qnbd") in med:
                q, o = med[rid, "qnbd"], med[rid, p]
                cpu = q.cpu_us / o.cpu_us if o.cpu_us else 0.0
                pairs[rid, p] = (q.iops / o.iops, cpu)
                lines.append(f"BENCH_RATIO row={rid} peer={p}"
                             f" iops_ratio={q.iops / o.iops:.3f}"
                             f" mbps_ratio={q.mbps / o.mbps:.3f}"
                             f" cpu_ratio={cpu:.3f}")
    if not pairs:
        return
    for k, title in ((0, "throughput, qnbd / peer (> 1: qnbd is faster;"
                      " the same for IOPS and MB/s)"),
                     (1, "server CPU per I/O, qnbd / peer"
                      " (< 1: qnbd uses less)")):
        print(f"\n{title}")
        print(f"  {'row':<30}" + "".join(f" {p:>9}" for p in peers))
        for rid, _, _ in rows:
            print(f"  {rid:<30}" + "".join(
                f" {pairs[rid, p][k]:>9.2f}" if (rid, p) in pairs
                else f" {'-':>9}" for p in peers))


def summary(rows_path, results_path, nrounds, runtime):
    rows, runs, failed = load(rows_path, results_path)
    med, lines, missing = {}, [], []
    for rid, servers, _ in rows:
        for s in servers:
            got = runs.get((rid, s), [])
            if len(got) != nrounds:
                why = ",".join(failed.get((rid, s), ["missing"]))
                missing.append(f"{rid}:{s}:{why}")
            if got:
                med[rid, s] = Stat(got, runtime)

    print(f"\nMedians of {nrounds} interleaved run(s) of {runtime:g} s; fio nbd"
          " engine, one connection, TCP 127.0.0.1.")
    print("MB/s = 10^6 bytes/s.  qnbd/server > 1: qnbd is faster.")
    peers = print_tables(rows, med, lines)
    print_ratios(rows, med, peers, lines)
    print()
    for line in lines:
        print(line)
    if missing:
        print("BENCH_STATUS complete=no missing=" + ";".join(missing))
        return 1
    print("BENCH_STATUS complete=yes")
    return 0


def main(argv):
    if len(argv) == 4 and argv[1] == "parse":
        parse(argv[2], argv[3])
    elif len(argv) in (4, 5) and argv[1] == "probe":
        probe(argv[2], argv[3], argv[4:] == ["write"])
    elif len(argv) == 6 and argv[1] == "summary":
        return summary(argv[2], argv[3], int(argv[4]), float(argv[5]))
    else:
        sys.exit(__doc__)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
