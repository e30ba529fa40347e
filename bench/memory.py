#!/usr/bin/env python3
"""Memory per idle connection: Postern against nginx and HAProxy, same machine, same run (issue 16).

For each mode (plain HTTP/1.1, HTTPS with HTTP/1.1) and each proxy (one worker each, interleaved):
RSS idle; RSS with 1,000 and 10,000 idle keep-alive connections (each has carried one request and
waits for the next); RSS a few seconds after they all close. RSS is summed over the process tree.

    bench/memory.py                                  # uses .build-release/release/postern
    POSTERN_BASELINE_BIN=/tmp/main/postern bench/memory.py   # adds a `postern-main` row, same run

Reuses bench/suite.py (its upstream, proxies, certificates and process handling). Standard library
only; every server listens on 127.0.0.1 and is killed by PID on exit; every step is bounded.
Settings (environment): COUNTS (1000,10000), MODES (plain,tls), PEERS (nginx,haproxy,postern),
SETTLE (3: seconds before each reading), RESULT_FILE (bench/results/DATE-memory.md).
"""

import errno
import json
import os
import resource
import signal
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import suite  # noqa: E402  (its module-level settings and scratch directory are shared)

ENV = os.environ
COUNTS = [int(x) for x in ENV.get("COUNTS", "1000,10000").split(",")]
MODES = ENV.get("MODES", "plain,tls").split(",")
PEERS = ENV.get("PEERS", "nginx,haproxy,postern").split(",")
SETTLE = float(ENV.get("SETTLE", "3"))
BASELINE_BIN = ENV.get("POSTERN_BASELINE_BIN", "")
RESULT_FILE = ENV.get("RESULT_FILE", os.path.join(suite.RESULTS_DIR, suite.DATE + "-memory.md"))
# RLIMIT_NOFILE of this process and of every process it starts (raise_descriptor_limit).
NOFILE = 0
# Every proxy keeps an idle client connection this long (longer than the run takes to open them all).
IDLE_SECONDS = 300


class Nginx(suite.Nginx):
    def config(self, spec):
        text = super().config(spec)
        # Room for 10,000 clients plus upstream connections; idle clients kept for the whole run.
        text = text.replace("worker_connections 10000;", "worker_connections 20000;")
        text = text.replace("worker_processes 1;", f"worker_processes 1;\nworker_rlimit_nofile {NOFILE};")
        return text.replace("keepalive_timeout 120s;", f"keepalive_timeout {IDLE_SECONDS}s;")


class HAProxy(suite.HAProxy):
    def config(self, spec):
        text = super().config(spec)
        # HAProxy sizes its descriptor limit for two per connection (client and server side) and,
        # by default (strict-limits), refuses to start when it cannot raise RLIMIT_NOFILE that far:
        # 20,200 for 10,000 clients, over a hard limit of 20,000 (what this machine allows, even to
        # root). With `http-reuse always` the idle clients share a few server connections, so
        # 10,000 clients need about 10,000 descriptors: start with the limit there is.
        text = text.replace("maxconn 8000", f"maxconn {max(COUNTS) + 100}\n    no strict-limits")
        return text.replace("timeout client 60s", f"timeout client {IDLE_SECONDS}s").replace(
            "timeout http-keep-alive 60s", f"timeout http-keep-alive {IDLE_SECONDS}s")


class Postern(suite.Postern):
    pass


class PosternMain(suite.Postern):
    """The same proxy built from main (before the change), for a before/after in one run."""
    name = "postern-main"
    binary = BASELINE_BIN


PROXIES = {"nginx": Nginx, "haproxy": HAProxy, "postern": Postern, "postern-main": PosternMain}


def log(message):
    suite.log(message)


def raise_descriptor_limit():
    """Raises RLIMIT_NOFILE for this process and so for every process it starts (they inherit it):
    to 2 per connection plus room if the hard limit can be raised (root with CAP_SYS_RESOURCE),
    else to the hard limit, which must leave room for the clients' sockets and the proxy's."""
    global NOFILE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2 * max(COUNTS) + 1000
    if hard != resource.RLIM_INFINITY and hard < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            hard = wanted
        except (ValueError, OSError):
            pass
    needed = max(COUNTS) + 1000
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise SystemExit(f"RLIMIT_NOFILE hard limit {hard} < {needed}: lower COUNTS or raise the limit")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    NOFILE = hard if hard != resource.RLIM_INFINITY else wanted
    return NOFILE


# Set when connecting from 127.0.0.1 ran out of ephemeral ports (see open_connections).
SOURCE_ADDRESSES = [False]
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


def connect(port, index):
    """A TCP connection to 127.0.0.1:port; from one of 50 loopback source addresses once the
    ephemeral ports of 127.0.0.1 ran out (the port is still chosen at connect, per address)."""
    if not SOURCE_ADDRESSES[0]:
        return socket.create_connection(("127.0.0.1", port), timeout=10)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(10)
        sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        sock.bind((f"127.0.0.{2 + index % 50}", 0))
        sock.connect(("127.0.0.1", port))
        return sock
    except OSError:
        sock.close()
        raise


def open_connections(port, tls, count, connections, deadline):
    """Opens keep-alive connections until there are `count`; each carries one request (200 expected)
    and then stays open, idle. Returns the number of failures."""
    context = None
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    request = f"GET / HTTP/1.1\r\nHost: {suite.HOST}\r\n\r\n".encode()
    failures = 0
    while len(connections) < count:
        if time.time() > deadline:
            raise RuntimeError(f"opening connections took too long ({len(connections)} of {count})")
        try:
            sock = connect(port, len(connections))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if context is not None:
                sock = context.wrap_socket(sock)   # no SNI: the proxies' default certificate
            sock.sendall(request)
            data = b""
            # The upstream's body is 99 'x' and a newline: the response ends there.
            while not data.endswith(b"x\n"):
                chunk = sock.recv(8192)
                if not chunk:
                    raise OSError("closed before the response ended")
                data += chunk
            if not data.startswith(b"HTTP/1.1 200"):
                raise OSError(data[:40])
            connections.append(sock)
        except OSError as error:
            if error.errno == errno.EADDRNOTAVAIL and not SOURCE_ADDRESSES[0]:
                # Out of ephemeral ports towards 127.0.0.1:port (28,000 by default, less the
                # TIME_WAIT of earlier runs): from now on spread the clients over 127.0.0.2-51.
                SOURCE_ADDRESSES[0] = True
                log("ephemeral ports exhausted: clients now bind source addresses 127.0.0.2-51")
            failures += 1
            if failures > 100:
                raise RuntimeError(f"too many failed connections: {error}")
    return failures


def close_connections(connections):
    for sock in connections:
        try:
            sock.close()
        except OSError:
            pass
    connections.clear()


def measure(proxy_class, mode):
    proxy = proxy_class(suite.UPSTREAM)
    spec = suite.Spec(tls="ecdsa" if mode == "tls" else None, postern_settings=f"keep-alive: {IDLE_SECONDS}\n")
    proxy.start(spec)
    row = {"proxy": proxy.name, "mode": mode, "failures": 0}
    connections = []
    try:
        time.sleep(SETTLE)
        row["idle_kib"] = suite.memory_kib(proxy.pid)[0]
        deadline = time.time() + 240
        for count in COUNTS:
            row["failures"] += open_connections(proxy.port, mode == "tls", count, connections, deadline)
            time.sleep(SETTLE)
            row[f"rss_{count}_kib"] = suite.memory_kib(proxy.pid)[0]
            # Still open? (a proxy that closed idle connections early would look cheap)
            row[f"open_{count}"] = len(connections)
        close_connections(connections)
        time.sleep(SETTLE)
        row["after_close_kib"] = suite.memory_kib(proxy.pid)[0]
        row["peak_kib"] = suite.memory_kib(proxy.pid)[1]
        # The proxy still answers after the storm.
        row["serves_after"] = suite.http_status(proxy.url + "/", tls=mode == "tls") == "200"
    finally:
        close_connections(connections)
        proxy.stop()
    log(f"{proxy.name} {mode}: {row}")
    return row


def mib(kib):
    return f"{kib / 1024:.1f}"


def table(rows):
    lines = []
    header = ["proxy", "mode", "idle RSS MiB"]
    for count in COUNTS:
        header += [f"RSS {count:,} conns MiB", f"KiB/conn at {count:,}"]
    header += ["RSS after close MiB", "after/idle", "peak MiB"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for row in rows:
        cells = [row["proxy"], row["mode"], mib(row["idle_kib"])]
        for count in COUNTS:
            rss = row[f"rss_{count}_kib"]
            cells += [mib(rss), f"{(rss - row['idle_kib']) / count:.2f}"]
        cells += [mib(row["after_close_kib"]), f"{row['after_close_kib'] / row['idle_kib']:.2f}", mib(row["peak_kib"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    limit = raise_descriptor_limit()
    os.sched_setaffinity(0, {suite.LOAD_CPU})
    names = [p for p in PEERS if p in PROXIES]
    if BASELINE_BIN:
        names.append("postern-main")
    for name in names:
        binary = getattr(PROXIES[name], "binary", None)
        if binary is not None and not os.path.exists(binary):
            raise SystemExit(f"{name}: no binary at {binary}")
    load_before = suite.loadavg()
    suite.make_certificates()
    suite.UPSTREAM.start()
    log(f"memory: proxies {', '.join(names)}; modes {', '.join(MODES)}; counts {COUNTS}; RLIMIT_NOFILE {limit}; "
        f"load average {' '.join(load_before)}")
    rows = []
    for mode in MODES:
        for name in names:
            rows.append(measure(PROXIES[name], mode))
    load_after = suite.loadavg()
    text = (f"# Memory per idle connection ({suite.DATE})\n\n"
            f"bench/memory.py: one worker each, CPU {suite.PROXY_CPU}; clients and upstream on CPU {suite.LOAD_CPU}; "
            f"each connection carried one `GET /` (HTTP/1.1; TLS: ECDSA P-256, no SNI, no ALPN) and then waits; "
            f"readings {SETTLE:g} s after each step; RSS summed over the process tree. "
            f"Load average before {' '.join(load_before)}, after {' '.join(load_after)}.\n\n"
            + table(rows) + "\n\n"
            + "\n".join(f"- {r['proxy']} {r['mode']}: failed connects {r['failures']}, "
                        f"serves after close: {r['serves_after']}" for r in rows) + "\n")
    print(text)
    os.makedirs(os.path.dirname(RESULT_FILE), exist_ok=True)
    with open(RESULT_FILE, "w") as f:
        f.write(text)
    with open(RESULT_FILE[:-3] + ".json", "w") as f:
        json.dump(rows, f, indent=1)
    log(f"written {RESULT_FILE}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
    finally:
        suite.cleanup()
