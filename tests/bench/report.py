#!/usr/bin/python3
"""Figures for bench.sh: reads fio's JSON, probes an export, prints the tables.

Not a test on its own (tests/bench/CMakeLists.txt registers bench.sh only).

  report.py parse FIO.json RW          -> "IOPS BW_BYTES" of the one job
  report.py probe URI RAW              -> exit 0 if the export shows RAW's
                                          data and takes writes
  report.py summary ROWS RESULTS N     -> tables and BENCH lines; exit 1
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


def probe(uri, raw):
    """Compare 1 MiB at the start and middle of the export with RAW, then
    write 64 KiB there and read it back: the rows write too."""
    import nbd  # Debian's python3-libnbd

    h = nbd.NBD()
    h.connect_uri(uri)
    size = h.get_size()
    with open(raw, "rb") as f:
        for off in (0, size // 2 & ~0xFFFFF):
            f.seek(off)
            if h.pread(1 << 20, off) != f.read(1 << 20):
                sys.exit(f"{uri}: data differs from {raw} at offset {off}")
    if h.is_read_only():
        sys.exit(f"{uri}: export is read-only")
    data = bytes(range(256)) * 256
    h.pwrite(data, size // 2)
    if h.pread(len(data), size // 2) != data:
        sys.exit(f"{uri}: a write did not read back")
    h.shutdown()


def load(rows_path, results_path):
    rows = []  # (id, [servers], description)
    with open(rows_path) as f:
        for line in f:
            rid, srv, desc = line.rstrip("\n").split("\t")
            rows.append((rid, [s for s in srv.split(",") if s], desc))
    runs = {}  # (row, server) -> [(iops, bw)]
    failed = {}  # (row, server) -> [status]
    with open(results_path) as f:
        for line in f:
            rid, srv, _rnd, status, iops, bw = line.rstrip("\n").split("\t")
            if status == "ok":
                runs.setdefault((rid, srv), []).append((float(iops), float(bw)))
            else:
                failed.setdefault((rid, srv), []).append(status)
    return rows, runs, failed


def medians(samples):
    iops = statistics.median(s[0] for s in samples)
    mbps = statistics.median(s[1] for s in samples) / 1e6
    # Spread of the runs around the median, to judge the noise.
    lo, hi = min(s[0] for s in samples), max(s[0] for s in samples)
    return iops, mbps, (hi - lo) / iops * 100 if iops else 0.0


def summary(rows_path, results_path, nrounds):
    rows, runs, failed = load(rows_path, results_path)
    med, lines, missing = {}, [], []
    for rid, servers, _ in rows:
        for s in servers:
            got = runs.get((rid, s), [])
            if len(got) != nrounds:
                why = ",".join(failed.get((rid, s), ["missing"]))
                missing.append(f"{rid}:{s}:{why}")
            if got:
                med[rid, s] = medians(got)

    print(f"\nMedians of {nrounds} interleaved run(s); fio nbd engine, one"
          " connection, TCP 127.0.0.1.")
    print("MB/s = 10^6 bytes/s.  ratio = qnbd / that server"
          " (> 1: qnbd is faster).")
    peers = []
    current = None
    for rid, servers, desc in rows:
        rset, job = rid.split("/", 1)
        if rset != current:
            current = rset
            print(f"\n{rset}: {desc}")
            print(f"  {'job':<18} {'server':<9} {'IOPS':>10} {'MB/s':>9}"
                  f" {'spread':>7} {'qnbd/server':>12}")
        first = True
        for s in servers:
            if s != "qnbd" and s not in peers:
                peers.append(s)
            name = job if first else ""
            first = False
            if (rid, s) not in med:
                print(f"  {name:<18} {s:<9} {'FAILED':>10}")
                continue
            iops, mbps, spread = med[rid, s]
            ratio = ""
            if s != "qnbd" and (rid, "qnbd") in med:
                ratio = f"{med[rid, 'qnbd'][0] / iops:.2f}"
            print(f"  {name:<18} {s:<9} {iops:>10,.0f} {mbps:>9.1f}"
                  f" {spread:>6.0f}% {ratio:>12}")
            n = len(runs[rid, s])
            lines.append(f"BENCH row={rid} server={s} iops={iops:.0f}"
                         f" mbps={mbps:.1f} runs={n} spread_pct={spread:.1f}")

    if peers and any(s == "qnbd" for _, srv, _ in rows for s in srv):
        print("\nqnbd / peer (the same for IOPS and MB/s: fixed block size)")
        print(f"  {'row':<30}" + "".join(f" {p:>9}" for p in peers))
        for rid, servers, _ in rows:
            cells = []
            for p in peers:
                if p in servers and (rid, p) in med and (rid, "qnbd") in med:
                    q, o = med[rid, "qnbd"], med[rid, p]
                    cells.append(f" {q[0] / o[0]:>9.2f}")
                    lines.append(f"BENCH_RATIO row={rid} peer={p}"
                                 f" iops_ratio={q[0] / o[0]:.3f}"
                                 f" mbps_ratio={q[1] / o[1]:.3f}")
                else:
                    cells.append(f" {'-':>9}")
            print(f"  {rid:<30}" + "".join(cells))

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
    elif len(argv) == 4 and argv[1] == "probe":
        probe(argv[2], argv[3])
    elif len(argv) == 5 and argv[1] == "summary":
        return summary(argv[2], argv[3], int(argv[4]))
    else:
        sys.exit(__doc__)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
