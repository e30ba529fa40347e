#!/usr/bin/env python3
"""Instructions per full TLS handshake, Postern or nginx, under callgrind.

    POSTERN_BIN=.build-release/release/postern python3 bench/tools/handshake-callgrind.py ecdsa postern [N]
    python3 bench/tools/handshake-callgrind.py rsa nginx [N]

The proxy runs under `valgrind --tool=callgrind` with instrumentation switched
on after start-up; `openssl s_client -no_ticket` makes N, then 2N, full
handshakes (a new process each: no resumption), with the counters zeroed
before and dumped after each batch. (instructions of the 2N batch - those of
the N batch) / N is the cost of one handshake, connection set-up included,
start-up excluded. Uses bench/suite.py's certificates, upstream and proxy
configurations (Postern with session tickets off, as in the suite); nginx runs
with `master_process off` so that callgrind sees the process that handshakes.
The last profile is copied to bench/results/DATE-callgrind-handshake-TARGET-KIND.out.
"""
import os
import shutil
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import suite  # noqa: E402


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("rsa", "ecdsa") or sys.argv[2] not in ("postern", "nginx"):
        raise SystemExit(__doc__)
    kind, target = sys.argv[1], sys.argv[2]
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    suite.make_certificates()
    suite.UPSTREAM.start()
    os.sched_setaffinity(0, {suite.LOAD_CPU})
    work = tempfile.mkdtemp(prefix="handshake-callgrind.", dir=suite.WORK)
    out = os.path.join(work, "callgrind.out")
    wrapper = ("valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--instr-atstart=no", "--dump-instr=no")
    spec = suite.Spec(tls=kind)
    if target == "postern":
        proxy = suite.Postern(suite.UPSTREAM)
        proxy.directory = tempfile.mkdtemp(prefix="postern.", dir=suite.WORK)
        # Valgrind 3.19 cannot read Swift's DWARF 5: a copy without debug sections keeps the symbols.
        proxy.binary = os.path.join(work, "postern-nodebug")
        subprocess.run(["objcopy", "--strip-debug", suite.POSTERN_BIN, proxy.binary], check=True)
        proxy.port = suite.free_port()
        proxy.spec = spec
        proxy.launch(spec, wrapper=wrapper)
        pid = proxy.pid
    else:
        proxy = suite.Nginx(suite.UPSTREAM)
        proxy.directory = tempfile.mkdtemp(prefix="nginx.", dir=suite.WORK)
        os.chmod(proxy.directory, 0o755)
        proxy.port = suite.free_port()
        proxy.spec = spec
        conf = os.path.join(proxy.directory, "nginx.conf")
        with open(conf, "w") as f:
            f.write(proxy.config(spec).replace("worker_processes 1;", "worker_processes 1;\nmaster_process off;"))
        proxy.process = suite.start_process([*wrapper, "nginx", "-c", conf, "-p", proxy.directory],
                                            "nginx-callgrind", suite.PROXY_CPU)
        pid = proxy.process.pid
    suite.wait_status(f"https://127.0.0.1:{proxy.port}/", tls=True, deadline=120, process=proxy.process)

    def control(*args):
        subprocess.run(["timeout", "60", "callgrind_control", *args, str(pid)], capture_output=True, text=True)

    def handshakes(n):
        for _ in range(n):
            subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{proxy.port}", "-no_ticket", "-brief"],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=30)

    control("-i", "on")
    handshakes(10)
    for n in (count, 2 * count):
        control("-z")
        handshakes(n)
        control("-d")
    dumps = sorted((p for p in os.listdir(work) if p.startswith("callgrind.out.")),
                   key=lambda p: os.path.getmtime(os.path.join(work, p)))
    dumps = [os.path.join(work, p) for p in dumps if os.path.getsize(os.path.join(work, p)) > 0]
    first, second = suite.callgrind_total(dumps[-2]), suite.callgrind_total(dumps[-1])
    print(f"{target} {kind}: {(second - first) / count:.0f} instructions per full handshake "
          f"({count} and {2 * count} handshakes)")
    shutil.copy(dumps[-1], os.path.join(suite.RESULTS_DIR, f"{suite.DATE}-callgrind-handshake-{target}-{kind}.out"))


if __name__ == "__main__":
    try:
        main()
    finally:
        suite.cleanup()
