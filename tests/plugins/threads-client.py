# Load for tests/interop/nbdkit-threads.sh: CONNS connections at once,
# each with REQS reads in flight together; exits non-zero if any read
# failed (the threads test plugins fail reads that break their model).
import sys
import threading

import nbd

uri, conns, reqs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
errors = []


def work():
    try:
        # An export listing too: connection-level callbacks count.
        lister = nbd.NBD()
        lister.set_opt_mode(True)
        lister.connect_uri(uri)
        lister.opt_list(lambda name, desc: 0)
        lister.opt_abort()
        h = nbd.NBD()
        h.connect_uri(uri)
        bufs = [nbd.Buffer(4096) for _ in range(reqs)]
        cookies = [h.aio_pread(b, 4096 * i) for i, b in enumerate(bufs)]
        while h.aio_in_flight() > 0:
            h.poll(-1)
        for c in cookies:
            h.aio_command_completed(c)
        h.shutdown()
    except Exception as ex:  # report every failure, from every thread
        errors.append(str(ex))


threads = [threading.Thread(target=work) for _ in range(conns)]
for t in threads:
    t.start()
for t in threads:
    t.join()
if errors:
    print("\n".join(errors), file=sys.stderr)
    sys.exit(1)
