#!/usr/bin/env python3
"""Postern benchmark suite: Postern against nginx, HAProxy, h2o and Envoy, same machine, same run.

Started by `bench/run` (which installs the tools and builds Postern first); see bench/README.md.
Standard library only. Every server it starts listens on 127.0.0.1 and is killed by PID on exit;
every load is bounded by a duration and a timeout.

Layout (2 CPUs): the proxy under test on PROXY_CPU (one worker each); the upstream (nginx, fixed
bodies), the load generator and this script on LOAD_CPU.
"""

import datetime
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

# --- settings --------------------------------------------------------------------------------------

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = os.environ
ROUNDS = int(ENV.get("ROUNDS", "3"))
DURATION = int(ENV.get("DURATION", "5"))
WARMUP = int(ENV.get("WARMUP", "1"))
CONNECTIONS = int(ENV.get("CONNECTIONS", "50"))
HANDSHAKE_CONNECTIONS = int(ENV.get("HANDSHAKE_CONNECTIONS", "20"))
H2_CONNECTIONS = int(ENV.get("H2_CONNECTIONS", "10"))
H2_STREAMS = int(ENV.get("H2_STREAMS", "10"))
PROXY_CPU = int(ENV.get("PROXY_CPU", "0"))
LOAD_CPU = int(ENV.get("LOAD_CPU", "1"))
CHURN_RATE = float(ENV.get("CHURN_RATE", "10"))       # configuration changes per second
PROBE_CONNECTIONS = int(ENV.get("PROBE_CONNECTIONS", "8"))
ROUTE_COUNT = int(ENV.get("ROUTE_COUNT", "10000"))
ALLOC_REQUESTS = int(ENV.get("ALLOC_REQUESTS", "20000"))
CALLGRIND_REQUESTS = int(ENV.get("CALLGRIND_REQUESTS", "5000"))
SYSCALL_REQUESTS = int(ENV.get("SYSCALL_REQUESTS", "5000"))
SCRATCH = ENV.get("SCRATCH", os.path.join(ROOT, ".build-release"))
POSTERN_BIN = ENV.get("POSTERN_BIN", os.path.join(SCRATCH, "release", "postern"))
PARSE_BENCH_BIN = ENV.get("PARSE_BENCH_BIN", os.path.join(SCRATCH, "http1-parse-bench", "http1-parse-bench"))
MALLOC_COUNT_SO = ENV.get("MALLOC_COUNT_SO", "")
ENVOY_BIN = ENV.get("ENVOY_BIN", "")
SCENARIOS = ENV.get("SCENARIOS", "1,2,3,4,4r,5,6,7,8,alloc,callgrind,alloc-h2,callgrind-h2,parse").split(",")
PEERS = ENV.get("PEERS", "nginx,haproxy,h2o,envoy,postern").split(",")
RESULTS_DIR = ENV.get("RESULTS_DIR", os.path.join(ROOT, "bench", "results"))
DATE = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
RESULT_FILE = ENV.get("RESULT_FILE", os.path.join(RESULTS_DIR, DATE + ".md"))
CHART_FILE = ENV.get("CHART_FILE", os.path.join(RESULTS_DIR, DATE + "-cpu.svg"))
SUMMARY_FILE = ENV.get("SUMMARY_FILE", os.path.join(ROOT, "bench", "RESULTS.md"))
HOST = "bench.local"
CLK_TCK = os.sysconf("SC_CLK_TCK")
POSTERN_NOT_YET = "postern: not yet supported (needs TLS/HTTP2 issue)"

WORK = tempfile.mkdtemp(prefix="postern-suite.")
os.chmod(WORK, 0o755)
PROCESSES = []          # every subprocess.Popen started, killed on exit
STARTED = time.time()


def log(message):
    print(f"[bench {time.time() - STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


def cleanup():
    # Each server runs in its own session (process group): kill the group, so nginx's and HAProxy's
    # workers go with their master. Groups of servers that already exited are killed too (orphaned workers).
    for process in PROCESSES:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    for process in PROCESSES:
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    if ENV.get("KEEP_WORK") == "1":
        log(f"scratch directory kept: {WORK}")
    else:
        shutil.rmtree(WORK, ignore_errors=True)


def start_process(argv, name, cpu, env=None):
    """Starts a server pinned to `cpu`, output to WORK/name.log; remembered for cleanup."""
    out = open(os.path.join(WORK, name + ".log"), "ab")
    process = subprocess.Popen(["taskset", "-c", str(cpu)] + argv, stdout=out, stderr=subprocess.STDOUT,
                               env=env, start_new_session=True)
    PROCESSES.append(process)
    return process


def stop_process(process, grace=3.0, sig=signal.SIGTERM):
    """Stops one process we started (and its process group: nginx and HAProxy workers), by PID."""
    if process.poll() is not None:
        try:
            os.killpg(process.pid, signal.SIGKILL)   # workers a dead master left behind
        except (ProcessLookupError, PermissionError):
            pass
    else:
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(timeout=5)
        try:
            os.killpg(process.pid, signal.SIGKILL)   # stragglers: old HAProxy workers, nginx workers
        except (ProcessLookupError, PermissionError):
            pass


def free_port():
    low = 32768
    try:
        low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    except OSError:
        pass
    for _ in range(100):
        port = random.randint(10000, max(low - 1, 11000))
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port")


def http_status(url, host=HOST, tls=False, h2=False, timeout=1.0):
    argv = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", str(timeout), "-H", f"Host: {host}"]
    if tls:
        argv.append("-k")
    argv.append("--http2" if h2 else "--http1.1")
    argv.append(url)
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 2).stdout.strip()
    except subprocess.TimeoutExpired:
        return "timeout"


def wait_status(url, expected="200", host=HOST, tls=False, what="server", deadline=30.0, process=None):
    end = time.time() + deadline
    last = ""
    while time.time() < end:
        last = http_status(url, host=host, tls=tls)
        if last == expected:
            return True
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited (logs in {WORK})")
        time.sleep(0.1)
    raise RuntimeError(f"{what}: {url} (Host {host}) answered {last!r}, wanted {expected}, within {deadline:.0f} s")


# --- /proc measurements ----------------------------------------------------------------------------

def _stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    return data[data.rindex(")") + 2:].split()


def descendants(pid):
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(_stat_fields(entry)[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, stack = [], [pid]
    while stack:
        p = stack.pop()
        for c in children.get(p, []):
            out.append(c)
            stack.append(c)
    return out


def cpu_ticks(pid):
    """(user, system) ticks of a process tree: the root's own and reaped children's time plus live descendants'."""
    user = system = 0
    try:
        f = _stat_fields(pid)
        user += int(f[11]) + int(f[13])
        system += int(f[12]) + int(f[14])
    except (OSError, IndexError):
        return (0, 0)
    for child in descendants(pid):
        try:
            f = _stat_fields(child)
            user += int(f[11])
            system += int(f[12])
        except (OSError, IndexError):
            pass
    return (user, system)


def memory_kib(pid):
    """(RSS, peak RSS) in KiB summed over the process tree."""
    rss = hwm = 0
    for p in [pid] + descendants(pid):
        try:
            for line in open(f"/proc/{p}/status"):
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm += int(line.split()[1])
        except OSError:
            pass
    return rss, hwm


def cpu_busy_ticks(cpu):
    """(busy, total) jiffies of one CPU from /proc/stat."""
    for line in open("/proc/stat"):
        if line.startswith(f"cpu{cpu} "):
            v = [int(x) for x in line.split()[1:]]
            idle = v[3] + v[4]
            return sum(v) - idle, sum(v)
    return 0, 0


def loadavg():
    return open("/proc/loadavg").read().split()[0:3]


# --- TLS material -----------------------------------------------------------------------------------

CERTS = {}


def make_certificates():
    for kind, keyargs in (("rsa", ["-newkey", "rsa:2048"]),
                          ("ecdsa", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])):
        key, cert = os.path.join(WORK, f"{kind}.key"), os.path.join(WORK, f"{kind}.crt")
        subprocess.run(["openssl", "req", "-x509", "-nodes", "-days", "2", *keyargs, "-keyout", key, "-out", cert,
                        "-subj", f"/CN={HOST}", "-addext", f"subjectAltName=DNS:{HOST}"],
                       check=True, capture_output=True)
        pem = os.path.join(WORK, f"{kind}.pem")
        with open(pem, "w") as out:
            out.write(open(cert).read() + open(key).read())
        for path in (key, cert, pem):
            os.chmod(path, 0o644)
        CERTS[kind] = {"key": key, "cert": cert, "pem": pem}


# --- upstream ---------------------------------------------------------------------------------------

NGINX_TEMP = lambda d: " ".join(f"{k}_temp_path {d}/tmp-{k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))


class Upstream:
    """Tuned nginx on LOAD_CPU: `/...` answers a fixed 100-byte body, `/64k` a 65,536-byte file."""

    def start(self):
        self.port = free_port()
        root = os.path.join(WORK, "upstream-root")
        os.makedirs(root, exist_ok=True)
        with open(os.path.join(root, "64k"), "wb") as f:
            f.write(bytes((ord("a") + i % 26) for i in range(65536)))
        conf = os.path.join(WORK, "upstream.conf")
        with open(conf, "w") as f:
            f.write(f"""worker_processes 1;
daemon off;
pid {WORK}/upstream.pid;
error_log {WORK}/upstream-error.log warn;
events {{ worker_connections 10000; }}
http {{
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    default_type text/plain;
    sendfile on;
    open_file_cache max=16;
    {NGINX_TEMP(WORK)}
    server {{
        listen 127.0.0.1:{self.port} backlog=4096;
        location = /64k {{ root {root}; }}
        location / {{ return 200 "{'x' * 99}\\n"; }}
    }}
}}
""")
        self.process = start_process(["nginx", "-c", conf, "-p", WORK], "upstream", LOAD_CPU)
        wait_status(f"http://127.0.0.1:{self.port}/", what="upstream nginx", process=self.process)
        self.pid = self.process.pid


# --- proxies under test -----------------------------------------------------------------------------

class Spec:
    """What a proxy instance must serve: plain or TLS (rsa|ecdsa), extra routes /rN/, a churn generation,
    whether the server keeps a session cache (`resumption`: tickets stay off either way), and whether the
    route carries the request policies of scenario 8 (`policy`: Postern only)."""

    def __init__(self, tls=None, routes=0, churn=None, resumption=False, policy=False, postern_settings=""):
        self.tls, self.routes, self.churn, self.resumption = tls, routes, churn, resumption
        self.policy = policy
        # Extra lines of Postern's --config file (bench/memory.py: a long keep-alive timeout).
        self.postern_settings = postern_settings


class Proxy:
    """One proxy under test. `unsupported` maps a feature (tls, h2, churn) to the reason it is not measured."""
    name = "?"
    unsupported = {}

    def __init__(self, upstream):
        self.upstream = upstream
        self.process = None
        self.directory = None

    def supports(self, feature):
        return feature not in self.unsupported

    @property
    def pid(self):
        return self.process.pid

    def start(self, spec):
        self.spec = spec
        self.directory = tempfile.mkdtemp(prefix=self.name + ".", dir=WORK)
        os.chmod(self.directory, 0o755)
        self.port = free_port()
        self.launch(spec)
        scheme = "https" if spec.tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        # Scenario 8's route admits only its allowlist: without the trusted X-Forwarded-For the peer
        # (127.0.0.1) is refused, which is what this start-up check then expects.
        expected = "403" if getattr(spec, "policy", False) else "200"
        wait_status(self.url + "/", expected=expected, tls=bool(spec.tls), what=self.name, process=self.process)

    def stop(self):
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def churn(self, generation):
        """Applies configuration generation `generation` (adds route /churn-G/ on host churn.local)."""
        raise NotImplementedError

    def churn_applied(self):
        """How many configuration changes the proxy reports having applied (None: not observable)."""
        return None

    def write_atomically(self, path, text):
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, path)


class Nginx(Proxy):
    name = "nginx"

    def config(self, spec):
        tls = ""
        listen = f"listen 127.0.0.1:{self.port}"
        if spec.tls:
            listen += " ssl http2"
            tls = f"ssl_certificate {CERTS[spec.tls]['cert']}; ssl_certificate_key {CERTS[spec.tls]['key']};"
        routes = "\n".join(f"        location /r{i}/ {{ proxy_pass http://bench; }}" for i in range(spec.routes))
        churn = ""
        if spec.churn is not None:
            churn = f"""    server {{
        {listen};
        server_name churn.local;
        {tls}
        location /churn-{spec.churn}/ {{ proxy_pass http://bench; }}
        location / {{ return 404; }}
    }}"""
        return f"""worker_processes 1;
daemon off;
pid {self.directory}/nginx.pid;
error_log {self.directory}/error.log warn;
events {{ worker_connections 10000; }}
http {{
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    {NGINX_TEMP(self.directory)}
    ssl_protocols TLSv1.2 TLSv1.3;   # nginx 1.22's default lacks TLSv1.3
    {"ssl_session_cache shared:SSL:10m; ssl_session_timeout 10m;" if spec.resumption else "ssl_session_cache off;"}
    ssl_session_tickets off;
    upstream bench {{ server 127.0.0.1:{self.upstream.port}; keepalive 64; }}
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    # 64 KiB responses stream through instead of spilling to a temporary file.
    proxy_max_temp_file_size 0;
    server {{
        {listen} default_server backlog=4096;
        server_name {HOST};
        {tls}
        location / {{ proxy_pass http://bench; }}
{routes}
    }}
{churn}
}}
"""

    def launch(self, spec):
        self.conf = os.path.join(self.directory, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(self.config(spec))
        self.process = start_process(["nginx", "-c", self.conf, "-p", self.directory], "nginx", PROXY_CPU)
        self.reloads = 0

    def churn(self, generation):
        self.spec.churn = generation
        self.write_atomically(self.conf, self.config(self.spec))
        os.kill(self.pid, signal.SIGHUP)   # what `nginx -s reload` sends
        self.reloads += 1


class HAProxy(Proxy):
    name = "haproxy"

    def config(self, spec):
        bind = f"bind 127.0.0.1:{self.port}"
        if spec.tls:
            bind += f" ssl crt {CERTS[spec.tls]['pem']} alpn h2,http/1.1"
        routes = "\n".join(f"    use_backend bench if {{ path_beg /r{i}/ }}" for i in range(spec.routes))
        churn = ""
        if spec.churn is not None:
            churn = f"""    acl churn_host hdr(host) -i churn.local
    acl churn_path path_beg /churn-{spec.churn}/
    http-request return status 404 if churn_host !churn_path"""
        return f"""global
    nbthread 1
    maxconn 8000
    tune.ssl.cachesize 0
    ssl-default-bind-options no-tls-tickets
defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
    http-reuse always
frontend fe
    {bind}
{churn}
{routes}
    default_backend bench
backend bench
    server s1 127.0.0.1:{self.upstream.port} maxconn 10000
"""

    def launch(self, spec):
        self.conf = os.path.join(self.directory, "haproxy.cfg")
        with open(self.conf, "w") as f:
            f.write(self.config(spec))
        # Master-worker mode: SIGUSR2 to the master reloads (a new worker, the old one finishes).
        self.process = start_process(["haproxy", "-W", "-db", "-f", self.conf], "haproxy", PROXY_CPU)
        self.reloads = 0

    def churn(self, generation):
        self.spec.churn = generation
        self.write_atomically(self.conf, self.config(self.spec))
        os.kill(self.pid, signal.SIGUSR2)
        self.reloads += 1


class H2O(Proxy):
    name = "h2o"

    def config(self, spec):
        proxy = {"proxy.reverse.url": f"http://127.0.0.1:{self.upstream.port}/"}
        paths = {"/": proxy}
        for i in range(spec.routes):
            paths[f"/r{i}/"] = proxy
        hosts = {HOST: {"paths": paths}}
        if spec.churn is not None:
            hosts["churn.local"] = {"paths": {f"/churn-{spec.churn}/": proxy}}
        listen = {"host": "127.0.0.1", "port": self.port}
        if spec.tls:
            listen["ssl"] = {"certificate-file": CERTS[spec.tls]["cert"], "key-file": CERTS[spec.tls]["key"]}
        return {
            "user": "root" if os.getuid() == 0 else os.environ.get("USER", "nobody"),
            "num-threads": 1,
            "error-log": os.path.join(self.directory, "error.log"),
            "ssl-session-resumption": {"mode": "off"},
            "listen": listen,
            "hosts": hosts,
        }

    def launch(self, spec):
        self.conf = os.path.join(self.directory, "h2o.conf")
        with open(self.conf, "w") as f:
            json.dump(self.config(spec), f)   # JSON is YAML
        if spec.churn is None:
            self.process = start_process(["h2o", "-c", self.conf], "h2o", PROXY_CPU)
            return
        # Graceful reload the way h2o documents it: start_server owns the listening socket and, on
        # SIGHUP, starts a new h2o with the new configuration and sends the old one SIGTERM, on
        # which it stops accepting and finishes its open connections.
        starter = "/usr/share/h2o/start_server"
        self.process = start_process([starter, f"--port=127.0.0.1:{self.port}", "--interval=0", "--",
                                      "h2o", "-c", self.conf], "h2o", PROXY_CPU)
        self.reloads = 0

    def churn(self, generation):
        self.spec.churn = generation
        self.write_atomically(self.conf, json.dumps(self.config(self.spec)))
        os.kill(self.pid, signal.SIGHUP)
        self.reloads += 1


class Envoy(Proxy):
    name = "envoy"

    def route_config(self, spec):
        routes = [{"match": {"prefix": f"/r{i}/"}, "route": {"cluster": "bench"}} for i in range(spec.routes)]
        routes.append({"match": {"prefix": "/"}, "route": {"cluster": "bench"}})
        hosts = []
        if spec.churn is not None:
            hosts.append({"name": "churn", "domains": ["churn.local"],
                          "routes": [{"match": {"prefix": f"/churn-{spec.churn}/"}, "route": {"cluster": "bench"}}]})
        hosts.append({"name": "bench", "domains": ["*"], "routes": routes})
        return json.dumps({"resources": [{
            "@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
            "name": "local_route", "virtual_hosts": hosts}]})

    def launch(self, spec):
        self.rds_dir = os.path.join(self.directory, "rds")
        os.makedirs(self.rds_dir)
        self.rds = os.path.join(self.rds_dir, "routes.json")
        with open(self.rds, "w") as f:
            f.write(self.route_config(spec))
        unlimited = {"max_connections": 1000000000, "max_pending_requests": 1000000000,
                     "max_requests": 1000000000, "max_retries": 1000000000}
        chain = {"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": "ingress", "codec_type": "AUTO",
                "rds": {"route_config_name": "local_route", "config_source": {
                    "resource_api_version": "V3",
                    "path_config_source": {"path": self.rds, "watched_directory": {"path": self.rds_dir}}}},
                "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}
        if spec.tls:
            chain["transport_socket"] = {"name": "envoy.transport_sockets.tls", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                "disable_stateless_session_resumption": True,
                "disable_stateful_session_resumption": True,
                "common_tls_context": {"alpn_protocols": ["h2", "http/1.1"], "tls_certificates": [{
                    "certificate_chain": {"filename": CERTS[spec.tls]["cert"]},
                    "private_key": {"filename": CERTS[spec.tls]["key"]}}]}}}
        self.admin_port = free_port()
        bootstrap = {
            "node": {"id": "bench", "cluster": "bench"},
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": self.admin_port}}},
            "static_resources": {
                "listeners": [{"name": "bench", "address": {"socket_address": {
                    "address": "127.0.0.1", "port_value": self.port}}, "filter_chains": [chain]}],
                "clusters": [{
                    "name": "bench", "type": "STATIC", "connect_timeout": "5s",
                    # Envoy's benchmarking FAQ: raise the circuit breakers so they do not cap the run.
                    "circuit_breakers": {"thresholds": [dict(priority="DEFAULT", **unlimited),
                                                        dict(priority="HIGH", **unlimited)]},
                    "load_assignment": {"cluster_name": "bench", "endpoints": [{"lb_endpoints": [{"endpoint": {
                        "address": {"socket_address": {"address": "127.0.0.1",
                                                       "port_value": self.upstream.port}}}}]}]}}]}}
        conf = os.path.join(self.directory, "envoy.json")
        with open(conf, "w") as f:
            json.dump(bootstrap, f)
        self.process = start_process([ENVOY_BIN, "-c", conf, "--concurrency", "1", "--disable-hot-restart",
                                      "-l", "warning"], "envoy", PROXY_CPU)

    def churn(self, generation):
        self.spec.churn = generation
        self.write_atomically(self.rds, self.route_config(self.spec))

    def churn_applied(self):
        try:
            out = subprocess.run(["curl", "-s", "-m", "2", f"http://127.0.0.1:{self.admin_port}/stats?filter=rds"],
                                 capture_output=True, text=True, timeout=5).stdout
            m = re.search(r"rds\.local_route\.update_success: (\d+)", out)
            return int(m.group(1)) if m else None
        except subprocess.TimeoutExpired:
            return None


class Postern(Proxy):
    name = "postern"
    # A feature Postern lacks goes here as {"tls"|"h2"|"churn": POSTERN_NOT_YET}: its scenarios then
    # report the row as not supported instead of failing. TLS and HTTP/2 are on main since 2026-11-27.
    unsupported = {}

    def manifests(self, spec):
        docs = [
            {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "postern"},
             "spec": {"controller": "postern.dev/ingress-controller"}},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "bench", "namespace": "default"},
             "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}},
            {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
             "metadata": {"name": "bench-1", "namespace": "default",
                          "labels": {"kubernetes.io/service-name": "bench"}},
             "addressType": "IPv4", "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
             "ports": [{"name": "http", "port": self.upstream.port}]},
            self.ingress("bench", HOST, ["/"], annotations=POLICY_ANNOTATIONS if spec.policy else None),
        ]
        if spec.tls:
            import base64
            encode = lambda path: base64.b64encode(open(path, "rb").read()).decode()
            docs.append({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                         "metadata": {"name": "bench-tls", "namespace": "default"},
                         "data": {"tls.crt": encode(CERTS[spec.tls]["cert"]),
                                  "tls.key": encode(CERTS[spec.tls]["key"])}})
            # Served as the default certificate only (no Ingress `tls` entry): the load clients connect to an IP,
            # so they send no SNI, and a `tls` entry for the host would make Postern answer 421 (see the report).
        return docs

    @staticmethod
    def ingress(name, host, paths, annotations=None):
        metadata = {"name": name, "namespace": "default"}
        if annotations:
            metadata["annotations"] = annotations
        return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": metadata,
                "spec": {"ingressClassName": "postern", "rules": [{"host": host, "http": {"paths": [
                    {"path": p, "pathType": "Prefix",
                     "backend": {"service": {"name": "bench", "port": {"number": 80}}}} for p in paths]}}]}}

    @staticmethod
    def yaml_documents(docs):
        return "\n---\n".join(json.dumps(d) for d in docs) + "\n"

    binary = POSTERN_BIN

    def launch(self, spec, wrapper=(), env=None):
        self.manifest_dir = os.path.join(self.directory, "manifests")
        os.makedirs(self.manifest_dir)
        with open(os.path.join(self.manifest_dir, "bench.yaml"), "w") as f:
            f.write(self.yaml_documents(self.manifests(spec)))
        if spec.routes:
            per = 100
            docs = [self.ingress(f"routes-{j}", HOST, [f"/r{i}/" for i in range(j * per, min((j + 1) * per, spec.routes))])
                    for j in range((spec.routes + per - 1) // per)]
            with open(os.path.join(self.manifest_dir, "routes.yaml"), "w") as f:
                f.write(self.yaml_documents(docs))
        if spec.churn is not None:
            self.churn(spec.churn)
        self.log_path = os.path.join(WORK, f"postern-{os.path.basename(self.directory)}.log")
        out = open(self.log_path, "wb")
        argv = ["taskset", "-c", str(PROXY_CPU), *wrapper, self.binary, "run", "--manifests", self.manifest_dir,
                "--workers", "1", "--admin-listen", "127.0.0.1:0"]
        if spec.tls:
            # The certificate is also the default one, so a client without SNI (an IP in the URL) gets it too.
            # Session tickets off, as for every peer (nginx `ssl_session_tickets off`, HAProxy `no-tls-tickets`,
            # h2o and Envoy resumption off): no ticket is minted per handshake, and clients cannot resume.
            settings = os.path.join(self.directory, "postern.yaml")
            with open(settings, "w") as f:
                # The session cache (on by default) is turned off too unless the scenario measures resumption.
                f.write("ssl-session-tickets: false\n" + ("" if spec.resumption else "ssl-session-cache: false\n")
                        + spec.postern_settings)
            argv += ["--config", settings, "--https-listen", f"127.0.0.1:{self.port}",
                     "--http-listen", f"127.0.0.1:{free_port()}", "--default-ssl-certificate", "default/bench-tls"]
        else:
            argv += ["--http-listen", f"127.0.0.1:{self.port}", "--https-listen", "off"]
            if spec.policy:
                # Trusted forwarded headers: wrk (127.0.0.1) is the trusted proxy, its X-Forwarded-For the client.
                settings = os.path.join(self.directory, "postern.yaml")
                with open(settings, "w") as f:
                    f.write("use-forwarded-headers: true\nproxy-real-ip-cidr: 127.0.0.1/32\n")
                argv += ["--config", settings]
            elif spec.postern_settings:
                settings = os.path.join(self.directory, "postern.yaml")
                with open(settings, "w") as f:
                    f.write(spec.postern_settings)
                argv += ["--config", settings]
        self.process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        PROCESSES.append(self.process)
        end = time.time() + 60
        self.admin_port = None
        while time.time() < end and self.admin_port is None:
            if self.process.poll() is not None:
                raise RuntimeError(f"postern exited: {open(self.log_path).read()[-2000:]}")
            m = re.search(r"^admin listening on 127\.0\.0\.1:(\d+)$", open(self.log_path).read(), re.M)
            if m:
                self.admin_port = int(m.group(1))
            time.sleep(0.05)

    def churn(self, generation):
        self.spec.churn = generation
        # Rewritten whole, by rename, so the watcher never reads half a file.
        self.write_atomically(os.path.join(self.manifest_dir, "churn.yaml"),
                              self.yaml_documents([self.ingress("churn", "churn.local", [f"/churn-{generation}/"])]))

    def metric(self, name):
        try:
            out = subprocess.run(["curl", "-s", "-m", "2", f"http://127.0.0.1:{self.admin_port}/metrics"],
                                 capture_output=True, text=True, timeout=5).stdout
        except subprocess.TimeoutExpired:
            return None
        total, found = 0.0, False
        for line in out.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
                found = True
        return total if found else None

    def churn_applied(self):
        value = self.metric("postern_config_reloads_total")
        return int(value) if value is not None else None


PROXY_CLASSES = {"nginx": Nginx, "haproxy": HAProxy, "h2o": H2O, "envoy": Envoy, "postern": Postern}


# --- load generators --------------------------------------------------------------------------------

def to_ms(value):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", value)
    if not m:
        return None
    n = float(m.group(1))
    return {"us": n / 1000, "ms": n, "s": n * 1000, "m": n * 60000}[m.group(2)]


def to_mib(value):
    m = re.match(r"([\d.]+)([KMGT]?B)$", value)
    if not m:
        return None
    return float(m.group(1)) * {"B": 1 / 1048576, "KB": 1 / 1024, "MB": 1, "GB": 1024, "TB": 1048576}[m.group(2)]


def wrk(url, duration, connections, headers=(), latency=True):
    argv = ["timeout", str(duration + 15), "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "-H", f"Host: {HOST}"]
    for h in headers:
        argv += ["-H", h]
    if latency:
        argv.append("--latency")
    argv.append(url)
    out = subprocess.run(argv, capture_output=True, text=True).stdout
    result = {"raw": out}
    m = re.search(r"(\d+) requests in", out)
    result["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    result["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"Transfer/sec:\s+(\S+)", out)
    result["mibps"] = to_mib(m.group(1)) if m else None
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M)
        result["p" + pct] = to_ms(m.group(1)) if m else None
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())
    result["errors"] = errors
    return result


def h2load(url, duration, warmup, clients, streams, h1=False, requests=None, log_file=None):
    # The route's host goes in as the authority: h2load turns it into `Host` with --h1; a `host` field
    # instead would be sent next to the one h2load derives from the URL (400 in HTTP/1.1 and in nginx's HTTP/2).
    authority = f":authority: {HOST}"
    # A counted run (the profiling steps) may be slowed down tenfold by valgrind or strace.
    limit = duration + warmup + 20 if requests is None else 180
    argv = ["timeout", str(limit), "h2load", f"-c{clients}", f"-m{streams}", "-H", authority]
    if requests is not None:
        argv += ["-n", str(requests)]
    else:
        argv += ["-D", str(duration), f"--warm-up-time={warmup}"]
    if h1:
        argv.append("--h1")
    if log_file:
        argv += ["--log-file", log_file]
    argv.append(url)
    out = subprocess.run(argv, capture_output=True, text=True).stdout
    result = {"raw": out, "p50": None, "p99": None, "mibps": None}
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout", out)
    result["requests"] = int(m.group(4)) if m else 0
    result["errors"] = (int(m.group(5)) + int(m.group(6)) + int(m.group(7))) if m else 0
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if m:
        result["errors"] += int(m.group(3)) + int(m.group(4))
    m = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s, (\S+)/s", out)
    result["rps"] = float(m.group(1)) if m else 0.0
    if m:
        result["mibps"] = to_mib(m.group(2))
    if log_file and os.path.exists(log_file):
        # h2load --log-file: "start(µs since epoch) status elapsed(µs)" per request.
        times = []
        with open(log_file) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3:
                    times.append(int(parts[2]))
        if times:
            times.sort()
            result["p50"] = times[len(times) // 2] / 1000
            result["p99"] = times[min(len(times) - 1, int(len(times) * 0.99))] / 1000
        os.remove(log_file)
    return result


class Probe:
    """Long-lived keep-alive connections sending a request every 50 ms each, for the churn scenario.

    Counts requests that got no 200 answer and connections the server closed (EOF, reset, or
    `Connection: close`); a closed connection is replaced by a new one."""

    def __init__(self, port, count=PROBE_CONNECTIONS, interval=0.05):
        self.port, self.count, self.interval = port, count, interval
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.requests = self.failed = self.closed = 0
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(count)]

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        for t in self.threads:
            t.join(timeout=5)

    def add(self, requests=0, failed=0, closed=0):
        with self.lock:
            self.requests += requests
            self.failed += failed
            self.closed += closed

    def run(self):
        request = f"GET /probe HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
        sock = None
        while not self.stop_flag.is_set():
            if sock is None:
                try:
                    sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                except OSError:
                    self.add(requests=1, failed=1)
                    time.sleep(self.interval)
                    continue
            ok, keep = self.exchange(sock, request)
            self.add(requests=1, failed=0 if ok else 1, closed=0 if keep else 1)
            if not keep:
                sock.close()
                sock = None
            self.stop_flag.wait(self.interval)
        if sock is not None:
            sock.close()

    @staticmethod
    def exchange(sock, request):
        """(got a 200, connection still open)."""
        try:
            sock.sendall(request)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    return False, False
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = lines[0].split(" ")[1] if len(lines[0].split(" ")) > 1 else ""
            length, close = 0, False
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
                elif name.strip().lower() == "connection" and "close" in value.lower():
                    close = True
            while len(body) < length:
                chunk = sock.recv(65536)
                if not chunk:
                    return False, False
                body += chunk
            return status == "200", not close
        except (OSError, ValueError, IndexError):
            return False, False


# --- measurement ------------------------------------------------------------------------------------

ROWS = []        # one dict per measured run
NOTES = {}       # scenario -> list of notes
RAW_DIR = os.path.join(WORK, "raw")
os.makedirs(RAW_DIR)


def note(scenario, text):
    NOTES.setdefault(scenario, []).append(text)
    log(f"note [{scenario}]: {text}")


def measure(scenario, target, round_, pid, load):
    """Runs `load()` (warm-up excluded) and records the proxy's CPU and the load core's busy share."""
    before = cpu_ticks(pid) if pid else (0, 0)
    busy0, total0 = cpu_busy_ticks(LOAD_CPU)
    t0 = time.time()
    result = load()
    elapsed = time.time() - t0
    busy1, total1 = cpu_busy_ticks(LOAD_CPU)
    after = cpu_ticks(pid) if pid else (0, 0)
    row = {"scenario": scenario, "target": target, "round": round_, "rps": result["rps"],
           "mibps": result.get("mibps"), "p50": result.get("p50"), "p99": result.get("p99"),
           "errors": result["errors"], "requests": result["requests"],
           "load_busy": 100.0 * (busy1 - busy0) / max(1, total1 - total0)}
    ticks = (after[0] - before[0]) + (after[1] - before[1])
    if pid and result["requests"] > 0:
        row["cpu_us"] = ticks / CLK_TCK * 1e6 / result["requests"]
        row["cpu_pct"] = ticks / CLK_TCK / elapsed * 100
        row["kernel_pct"] = 100.0 * (after[1] - before[1]) / ticks if ticks else None
    if pid:
        row["rss_mib"], row["peak_rss_mib"] = [v / 1024 for v in memory_kib(pid)]
    for key, value in result.items():
        if key not in ("raw",) and key not in row:
            row[key] = value
    with open(os.path.join(RAW_DIR, f"{scenario}-{target}-{round_}.txt"), "w") as f:
        f.write(result.get("raw", ""))
    ROWS.append(row)
    fmt = lambda v, spec: ("n/a" if v is None else format(v, spec))
    log(f"{scenario} round {round_} {target}: {result['rps']:.0f} req/s, p99 {fmt(row.get('p99'), '.3f')} ms, "
        f"CPU {fmt(row.get('cpu_us'), '.2f')} µs/req, errors {row['errors']}, load core {row['load_busy']:.0f}%")
    return row


def start_proxies(names, spec_for, feature):
    """Starts every peer that supports `feature`; returns (running, skipped-with-reason)."""
    running, skipped = [], {}
    for name in names:
        proxy = PROXY_CLASSES[name](UPSTREAM)
        if not proxy.supports(feature):
            skipped[name] = proxy.unsupported[feature]
            continue
        try:
            proxy.start(spec_for())
            running.append(proxy)
        except Exception as error:   # a peer that fails to start is reported, the others still run
            skipped[name] = f"{name}: failed to start ({error})"
            proxy.stop()
    return running, skipped


def finish(scenario, running, skipped):
    for proxy in running:
        rss, hwm = memory_kib(proxy.pid)
        for row in ROWS:
            if row["scenario"] == scenario and row["target"] == proxy.name:
                row["peak_rss_mib"] = hwm / 1024
        proxy.stop()
    for name, reason in skipped.items():
        ROWS.append({"scenario": scenario, "target": name, "skipped": reason})
        log(f"{scenario} {name}: {reason}")


SCENARIO_TITLES = {
    "s1": "1. HTTP/1.1 keep-alive, 100-byte responses",
    "s2": "2. HTTP/1.1 keep-alive, 64 KiB responses",
    "s3": "3. HTTPS (TLS 1.3, RSA-2048) keep-alive, HTTP/1.1, 100-byte responses",
    "s4-rsa": "4a. Full TLS handshakes per second, RSA-2048 (`openssl s_time -new`: no resumption, no request)",
    "s4-ecdsa": "4b. Full TLS handshakes per second, ECDSA P-256 (`openssl s_time -new`: no resumption, no request)",
    "s4-resumed": "4c. Resumed TLS 1.2 handshakes per second, RSA-2048, session cache on, tickets off (`openssl s_time -reuse -tls1_2`: session IDs, no request)",
    "s5": "5. HTTP/2 over TLS (RSA-2048), 10 streams per connection, 100-byte responses",
    "s6": "6. Configuration churn: scenario 1 while the routing configuration changes 10 times a second",
    "s8": "8. HTTP/1.1 keep-alive, 100-byte responses, Postern's route with an allowlist of 1,000 CIDRs, a body limit "
          "and trusted forwarded headers (`postern-policy`) next to the same route without them (`postern`)",
}

# Scenario 8: 1,000 CIDRs (10.0.0.0/24 … 10.3.231.0/24), the client's (10.3.7.9, from X-Forwarded-For) among them.
POLICY_ANNOTATIONS = {
    "nginx.ingress.kubernetes.io/whitelist-source-range": ",".join(f"10.{i // 256}.{i % 256}.0/24" for i in range(1000)),
    "nginx.ingress.kubernetes.io/proxy-body-size": "1m",
}
POLICY_HEADERS = ("X-Forwarded-For: 198.51.100.1, 10.3.7.9",)


def keepalive_scenario(scenario, path, feature="http1", tls=None, with_direct=True, connections=CONNECTIONS,
                       headers=()):
    running, skipped = start_proxies(PEERS, lambda: Spec(tls=tls), feature)
    targets = [(p.name, p.url, p.pid) for p in running]
    if with_direct:
        targets.append(("direct", f"http://127.0.0.1:{UPSTREAM.port}", None))
    for round_ in range(1, ROUNDS + 1):
        for name, url, pid in targets:
            wrk(url + path, WARMUP, connections, headers, latency=False)
            measure(scenario, name, round_, pid, lambda: wrk(url + path, DURATION, connections, headers))
    finish(scenario, running, skipped)


def scenario_1():
    keepalive_scenario("s1", "/")


def scenario_2():
    keepalive_scenario("s2", "/64k")


def scenario_3():
    keepalive_scenario("s3", "/", feature="tls", tls="rsa", with_direct=False)


def scenario_8():
    """Postern alone, two instances interleaved: the plain route and the route with request policies.
    Both get the same X-Forwarded-For; only the policy instance trusts it (and needs it: 127.0.0.1 is
    not in its allowlist, so a request that bypassed the client-address phase would get 403 and count
    as an error)."""
    running, skipped = [], {}
    for name, spec in (("postern", Spec()), ("postern-policy", Spec(policy=True))):
        proxy = Postern(UPSTREAM)
        proxy.name = name
        try:
            proxy.start(spec)
            running.append(proxy)
        except Exception as error:
            skipped[name] = f"{name}: failed to start ({error})"
            proxy.stop()
    for round_ in range(1, ROUNDS + 1):
        for proxy in running:
            wrk(proxy.url + "/", WARMUP, CONNECTIONS, POLICY_HEADERS, latency=False)
            measure("s8", proxy.name, round_, proxy.pid, lambda: wrk(proxy.url + "/", DURATION, CONNECTIONS, POLICY_HEADERS))
    finish("s8", running, skipped)
    medians = {}
    for target in ("postern", "postern-policy"):
        values = sorted(r["cpu_us"] for r in ROWS if r["scenario"] == "s8" and r["target"] == target and "cpu_us" in r)
        if values:
            medians[target] = values[len(values) // 2]
    if len(medians) == 2:
        note("s8", f"CPU µs/req with the policies / without: {medians['postern-policy'] / medians['postern']:.3f} "
                   f"({medians['postern-policy']:.2f} vs {medians['postern']:.2f}); the target is within 1.05")


def count_resumed(port):
    """Whether the server resumes sessions: (TLS 1.2 resumed of 5 offers, TLS 1.3 resumed of 1 offer).

    TLS 1.2: `openssl s_client -reconnect` offers the first session 5 times. TLS 1.3: the ticket comes
    after the handshake, so one client stays connected a second to receive it (`-sess_out`) and a
    second client offers it (`-sess_in`)."""
    base = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", HOST]
    try:
        out = subprocess.run(["timeout", "20", *base, "-tls1_2", "-reconnect"], input="", capture_output=True,
                             text=True).stdout
        tls12 = len(re.findall(r"^Reused,", out, re.M))
        session = os.path.join(WORK, "tls13.session")
        first = subprocess.Popen(["timeout", "10", *base, "-tls1_3", "-sess_out", session], stdin=subprocess.PIPE,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        first.communicate(input=b"", timeout=15)
        if not os.path.exists(session):
            return tls12, None
        second = subprocess.Popen(["timeout", "10", *base, "-tls1_3", "-sess_in", session], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        time.sleep(0.5)
        out = second.communicate(input="", timeout=15)[0]
        os.remove(session)
        return tls12, len(re.findall(r"^Reused,", out, re.M))
    except (subprocess.SubprocessError, OSError):
        return None


def s_time(port, duration, processes):
    """Full TLS handshakes: `processes` parallel `openssl s_time -new` clients for `duration` seconds.

    `-new` makes every connection a new session (the client never offers one to resume: wrk and h2load
    would, since OpenSSL keeps the session across SSL_clear). No request is sent: handshake, then close."""
    argv = ["timeout", str(duration + 15), "openssl", "s_time", "-connect", f"127.0.0.1:{port}", "-new",
            "-time", str(duration)]
    t0 = time.time()
    children = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                for _ in range(processes)]
    outputs = [c.communicate()[0] for c in children]
    elapsed = time.time() - t0
    total, errors = 0, 0
    for out, child in zip(outputs, children):
        m = re.search(r"(\d+) connections in [\d.]+ real seconds", out) or re.search(r"(\d+) connections in", out)
        if m:
            total += int(m.group(1))
        if child.returncode != 0 or "ERROR" in out:
            errors += 1
    return {"raw": "\n".join(outputs), "requests": total, "rps": total / max(elapsed, duration), "errors": errors,
            "p50": None, "p99": None}


def scenario_4():
    for kind in ("rsa", "ecdsa"):
        scenario = f"s4-{kind}"
        running, skipped = start_proxies(PEERS, lambda: Spec(tls=kind), "tls")
        for proxy in running:
            resumed = count_resumed(proxy.port)
            if resumed is None:
                note(scenario, f"{proxy.name}: could not check session resumption")
            else:
                note(scenario, f"{proxy.name}: server resumes offered sessions: TLS 1.2 {resumed[0]} of 5, TLS 1.3 "
                               f"{'no ticket issued' if resumed[1] is None else str(resumed[1]) + ' of 1'} (the load client `s_time -new` "
                               f"never offers one, so every measured handshake is full)")
        for round_ in range(1, ROUNDS + 1):
            for proxy in running:
                s_time(proxy.port, WARMUP, HANDSHAKE_CONNECTIONS)
                measure(scenario, proxy.name, round_, proxy.pid,
                        lambda: s_time(proxy.port, DURATION, HANDSHAKE_CONNECTIONS))
        finish(scenario, running, skipped)


def s_time_resumed(port, duration, processes):
    """Resumed TLS 1.2 handshakes: `processes` parallel `openssl s_time -reuse -tls1_2` clients.

    Each client makes one full handshake, then offers that session ID on every later connection
    (s_time prints `r` for each resumed one, counted here). TLS 1.2 because s_time never reads, so a
    TLS 1.3 ticket (sent after the handshake) never reaches it."""
    argv = ["timeout", str(duration + 15), "openssl", "s_time", "-connect", f"127.0.0.1:{port}", "-reuse", "-tls1_2",
            "-time", str(duration)]
    t0 = time.time()
    children = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                for _ in range(processes)]
    outputs = [c.communicate()[0] for c in children]
    elapsed = time.time() - t0
    total, resumed, errors = 0, 0, 0
    for out, child in zip(outputs, children):
        m = re.search(r"(\d+) connections in [\d.]+ real seconds", out) or re.search(r"(\d+) connections in", out)
        if m:
            total += int(m.group(1))
        resumed += sum(line.count("r") for line in out.splitlines() if line and set(line) <= set("r*123."))
        if child.returncode != 0 or "ERROR" in out:
            errors += 1
    return {"raw": "\n".join(outputs), "requests": total, "rps": total / max(elapsed, duration), "errors": errors,
            "resumed_share": resumed / total if total else None, "p50": None, "p99": None}


def scenario_4_resumed():
    """Resumed handshakes beside nginx with `ssl_session_cache shared:SSL:10m` (tickets off on both):
    CPU µs per resumed handshake. Only nginx and Postern: the other peers' caches are not configured here."""
    scenario = "s4-resumed"
    peers = [name for name in PEERS if name in ("nginx", "postern")]
    running, skipped = start_proxies(peers, lambda: Spec(tls="rsa", resumption=True), "tls")
    for round_ in range(1, ROUNDS + 1):
        for proxy in running:
            s_time_resumed(proxy.port, WARMUP, HANDSHAKE_CONNECTIONS)
            row = measure(scenario, proxy.name, round_, proxy.pid,
                          lambda: s_time_resumed(proxy.port, DURATION, HANDSHAKE_CONNECTIONS))
            share = row.get("resumed_share")
            note(scenario, f"{proxy.name} round {round_}: {'n/a' if share is None else f'{share:.1%}'} of connections resumed")
    finish(scenario, running, skipped)


def scenario_5():
    running, skipped = start_proxies(PEERS, lambda: Spec(tls="rsa"), "h2")
    for round_ in range(1, ROUNDS + 1):
        for proxy in running:
            url = proxy.url + "/"
            log_file = os.path.join(WORK, "h2load.log")
            measure("s5", proxy.name, round_, proxy.pid,
                    lambda: h2load(url, DURATION, WARMUP, H2_CONNECTIONS, H2_STREAMS, log_file=log_file))
    finish("s5", running, skipped)


def scenario_6():
    scenario = "s6"
    running, skipped = start_proxies(PEERS, lambda: Spec(churn=0), "churn")
    generation = [0]
    for round_ in range(1, ROUNDS + 1):
        for proxy in running:
            url = proxy.url + "/"
            wrk(url, WARMUP, CONNECTIONS, latency=False)
            applied_before = proxy.churn_applied()
            stop = threading.Event()
            changes = [0]

            def churner():
                next_at = time.time()
                while not stop.is_set():
                    generation[0] += 1
                    proxy.churn(generation[0])
                    changes[0] += 1
                    next_at += 1.0 / CHURN_RATE
                    stop.wait(max(0.0, next_at - time.time()))

            thread = threading.Thread(target=churner, daemon=True)
            with Probe(proxy.port) as probe:
                thread.start()
                row = measure(scenario, proxy.name, round_, proxy.pid, lambda: wrk(url, DURATION, CONNECTIONS))
                stop.set()
                thread.join(timeout=5)
            row.update(changes=changes[0], probe_requests=probe.requests, probe_failed=probe.failed,
                       probe_closed=probe.closed)
            # The last generation must be live (and the previous one gone) within 3 s.
            last = generation[0]
            live = f"/churn-{last}/"
            try:
                wait_status(proxy.url + live, "200", host="churn.local", what=proxy.name, deadline=3.0)
                stale = http_status(proxy.url + f"/churn-{last - 1}/", host="churn.local")
                row["final_config"] = "applied" if stale == "404" else f"applied, previous route answers {stale}"
            except RuntimeError as error:
                row["final_config"] = f"NOT applied: {error}"
            applied_after = proxy.churn_applied()
            if applied_before is not None and applied_after is not None:
                row["applied"] = applied_after - applied_before
            log(f"s6 {proxy.name}: {changes[0]} changes written, applied {row.get('applied', 'n/a')}, "
                f"probe {probe.requests} requests / {probe.failed} failed / {probe.closed} closed, "
                f"final config {row['final_config']}")
    finish(scenario, running, skipped)


MEMORY = []
REPORT_META = {}   # run_label ("DATE TIME at commit X") kept when a report is rewritten from its JSON


def scenario_7():
    for name in PEERS:
        entry = {"target": name}
        for routes in (0, ROUTE_COUNT):
            proxy = PROXY_CLASSES[name](UPSTREAM)
            t0 = time.time()
            try:
                proxy.start(Spec(routes=routes))
                if routes:
                    wait_status(proxy.url + f"/r{routes - 1}/x", what=name, deadline=60.0, process=proxy.process)
                ready = time.time() - t0
                time.sleep(1.0)
                rss, hwm = memory_kib(proxy.pid)
                key = "routes" if routes else "idle"
                entry[key + "_rss"], entry[key + "_hwm"], entry[key + "_ready"] = rss / 1024, hwm / 1024, ready
                log(f"s7 {name} {routes} routes: RSS {rss / 1024:.1f} MiB (peak {hwm / 1024:.1f}), ready in {ready:.2f} s")
            except Exception as error:
                entry["error"] = str(error)
                log(f"s7 {name}: {error}")
            finally:
                proxy.stop()
        MEMORY.append(entry)


# --- Postern allocations, callgrind and the parser micro-benchmark --------------------------------------

ALLOC = {}
CALLGRIND = {}
# The same two measurements over HTTP/2 and TLS (`alloc-h2`, `callgrind-h2`): h2load -c2 -m10 on the HTTPS listener.
ALLOC_H2 = {}
CALLGRIND_H2 = {}
# Where the time goes on a large response (`callgrind-64k`, `syscalls-64k`): HTTP/1.1 keep-alive, 64 KiB bodies.
CALLGRIND_64K = {}
SYSCALLS_64K = {}
CALLGRIND_BY_MODE = {"h1": CALLGRIND, "h2": CALLGRIND_H2, "h1-64k": CALLGRIND_64K}
PROFILE_SUFFIX = {"h1": "", "h2": "-h2", "h1-64k": "-64k"}
PARSE = []


def read_malloc_counts(path, pid):
    if os.path.exists(path):
        os.remove(path)
    os.kill(pid, signal.SIGUSR2)
    end = time.time() + 5
    while time.time() < end:
        if os.path.exists(path) and os.path.getsize(path) > 0:
            time.sleep(0.05)
            break
        time.sleep(0.02)
    counts = {}
    for line in open(path):
        tid, comm, allocs, frees, size = line.split()
        counts[(int(tid), comm)] = (int(allocs), int(frees), int(size))
    return counts


# Load of the allocation and callgrind steps: HTTP/1.1 keep-alive (10 connections, one request each at a time),
# or HTTP/2 over TLS (2 connections of 10 concurrent streams, as scenario 5 but fewer connections).
STEP_LOAD = {"h1": {"clients": 10, "streams": 1, "h1": True, "tls": None, "path": "/"},
             "h2": {"clients": 2, "streams": 10, "h1": False, "tls": "rsa", "path": "/"},
             "h1-64k": {"clients": 10, "streams": 1, "h1": True, "tls": None, "path": "/64k"}}


def step_proxy(prefix, mode, env=None, wrapper=(), binary=None):
    proxy = Postern(UPSTREAM)
    proxy.directory = tempfile.mkdtemp(prefix=prefix, dir=WORK)
    if binary:
        proxy.binary = binary
    proxy.port = free_port()
    proxy.spec = Spec(tls=STEP_LOAD[mode]["tls"])
    proxy.launch(proxy.spec, env=env, wrapper=wrapper)
    proxy.url = f"{'https' if proxy.spec.tls else 'http'}://127.0.0.1:{proxy.port}"
    return proxy


def step_h2load(url, mode, requests):
    load = STEP_LOAD[mode]
    return h2load(url, 0, 0, load["clients"], load["streams"], h1=load["h1"], requests=requests)


def alloc_scenario(mode="h1"):
    result = ALLOC if mode == "h1" else ALLOC_H2
    if not MALLOC_COUNT_SO or not os.path.exists(MALLOC_COUNT_SO):
        result["error"] = "malloc counter not built"
        return
    out_path = os.path.join(WORK, "malloc-counts.txt")
    env = dict(os.environ, LD_PRELOAD=MALLOC_COUNT_SO, MALLOC_COUNT_OUT=out_path)
    proxy = step_proxy("postern-alloc.", mode, env=env)
    try:
        wait_status(proxy.url + "/", tls=bool(proxy.spec.tls), what="postern (malloc counter)", process=proxy.process)
        url = proxy.url + "/"
        n = ALLOC_REQUESTS
        step_h2load(url, mode, n)          # warm-up: pools, buffers, caches
        time.sleep(0.3)
        snapshots = [read_malloc_counts(out_path, proxy.pid)]
        runs = []
        for count in (n, 2 * n):
            runs.append(step_h2load(url, mode, count))
            time.sleep(0.3)
            snapshots.append(read_malloc_counts(out_path, proxy.pid))
        served = [r["requests"] for r in runs]
        result["requests"] = served
        result["errors"] = sum(r["errors"] for r in runs)
        threads = []
        keys = set().union(*snapshots)
        for key in sorted(keys):
            a = [s.get(key, (0, 0, 0)) for s in snapshots]
            d1 = [a[1][i] - a[0][i] for i in range(3)]
            d2 = [a[2][i] - a[1][i] for i in range(3)]
            threads.append({"tid": key[0], "name": key[1], "n": d1, "2n": d2})
        result["threads"] = threads
        total1 = sum(t["n"][0] for t in threads)
        total2 = sum(t["2n"][0] for t in threads)
        bytes1 = sum(t["n"][2] for t in threads)
        bytes2 = sum(t["2n"][2] for t in threads)
        extra = served[1] - served[0]
        result["per_request"] = (total2 - total1) / extra if extra else None
        result["bytes_per_request"] = (bytes2 - bytes1) / extra if extra else None
        result["totals"] = (total1, total2)
        log(f"alloc ({mode}): {total1} allocations for {served[0]} requests, {total2} for {served[1]}: "
            f"{result['per_request']:.3f} per request ({result['bytes_per_request']:.0f} bytes)")
    except Exception as error:
        result["error"] = str(error)
        log(f"alloc: {error}")
    finally:
        proxy.stop()


def callgrind_total(path):
    for line in open(path):
        if line.startswith("summary:") or line.startswith("totals:"):
            return int(line.split()[1])
    return None


def callgrind_scenario(mode="h1"):
    result = CALLGRIND_BY_MODE[mode]
    if shutil.which("valgrind") is None:
        result["error"] = "valgrind not installed"
        return
    work = tempfile.mkdtemp(prefix=f"callgrind-{mode}.", dir=WORK)
    out_base = os.path.join(work, "callgrind.out")
    # Valgrind 3.19 cannot read the DWARF 5 the Swift 6 toolchain emits ("possibly corrupted debuginfo");
    # a copy without debug sections keeps the symbol table, so functions still have names.
    binary = os.path.join(WORK, "postern-nodebug")
    subprocess.run(["objcopy", "--strip-debug", POSTERN_BIN, binary], check=True)
    wrapper = ("valgrind", "--tool=callgrind", f"--callgrind-out-file={out_base}", "--instr-atstart=no",
               "--dump-instr=no")
    proxy = step_proxy("postern-callgrind.", mode, wrapper=wrapper, binary=binary)
    try:
        wait_status(proxy.url + "/", tls=bool(proxy.spec.tls), what="postern (callgrind)", deadline=120,
                    process=proxy.process)
        url = proxy.url + STEP_LOAD[mode]["path"]
        control = lambda *args: subprocess.run(["timeout", "60", "callgrind_control", *args, str(proxy.pid)],
                                               capture_output=True, text=True)
        control("-i", "on")
        # 64 KiB responses cost about ten times the instructions of small ones: fewer of them.
        n = CALLGRIND_REQUESTS if mode != "h1-64k" else max(200, CALLGRIND_REQUESTS // 5)
        step_h2load(url, mode, n)   # warm-up, instrumented
        served = []
        for count in (n, 2 * n):
            control("-z")
            served.append(step_h2load(url, mode, count)["requests"])
            control("-d")
        dumps = sorted((p for p in os.listdir(work) if p.startswith("callgrind.out.")),
                       key=lambda p: os.path.getmtime(os.path.join(work, p)))
        dumps = [os.path.join(work, p) for p in dumps if os.path.getsize(os.path.join(work, p)) > 0]
        if len(dumps) < 2:
            raise RuntimeError(f"expected two callgrind dumps, found {dumps}")
        t1, t2 = callgrind_total(dumps[-2]), callgrind_total(dumps[-1])
        result["requests"] = served
        result["ir"] = (t1, t2)
        result["per_request"] = (t2 - t1) / (served[1] - served[0])
        annotate = subprocess.run(["callgrind_annotate", "--inclusive=no", dumps[-1]], capture_output=True,
                                  text=True).stdout
        top = []
        for line in annotate.splitlines():
            m = re.match(r"\s*([\d,]+)\s+\(\s*([\d.]+)%\)\s+(.*)$", line)
            if m and "PROGRAM TOTALS" not in line:
                ir = int(m.group(1).replace(",", ""))
                top.append((ir / served[1], float(m.group(2)), demangle(m.group(3))))
            if len(top) >= 25:
                break
        result["top"] = top
        suffix = PROFILE_SUFFIX[mode]
        shutil.copy(dumps[-1], os.path.join(RESULTS_DIR, f"{DATE}-callgrind-postern{suffix}.out"))
        log(f"callgrind ({mode}): {result['per_request']:.0f} instructions per request")
    except Exception as error:
        result["error"] = str(error)
        log(f"callgrind: {error}")
    finally:
        proxy.stop()


def demangle(symbol):
    file_part, _, function = symbol.rpartition(":") if ":$s" in symbol else ("", "", symbol)
    function = function.split(" [")[0]
    if function.startswith("$s") and shutil.which("swift-demangle"):
        out = subprocess.run(["swift-demangle", "--simplified", "--compact", function], capture_output=True,
                             text=True).stdout.strip()
        function = out or function
    where = os.path.basename(file_part) if file_part else ""
    return f"{function} ({where})" if where else function


def syscalls_scenario():
    """System calls per 64 KiB response: `strace -f -c` attached to the worker for 2N requests after N."""
    result = SYSCALLS_64K
    if shutil.which("strace") is None:
        result["error"] = "strace not installed"
        return
    mode = "h1-64k"
    proxy = step_proxy("postern-strace.", mode)
    summary = os.path.join(WORK, "strace-64k.txt")
    tracer = None
    try:
        wait_status(proxy.url + "/", what="postern (strace)", process=proxy.process)
        url = proxy.url + STEP_LOAD[mode]["path"]
        step_h2load(url, mode, SYSCALL_REQUESTS)   # warm-up: pools, upstream connections
        tracer = subprocess.Popen(["strace", "-f", "-c", "-o", summary, "-p", str(proxy.pid)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        served = step_h2load(url, mode, SYSCALL_REQUESTS)["requests"]
        time.sleep(0.3)
        tracer.send_signal(signal.SIGINT)
        tracer.wait(timeout=30)
        tracer = None
        calls = {}
        for line in open(summary):
            fields = line.split()
            # % time, seconds, usecs/call, calls, [errors,] syscall
            if len(fields) >= 5 and fields[0][0].isdigit() and fields[-1] != "total":
                count = int(fields[3])
                calls[fields[-1]] = calls.get(fields[-1], 0) + count
        result["requests"] = served
        result["calls"] = {name: count / served for name, count in sorted(calls.items(), key=lambda kv: -kv[1])}
        result["per_request"] = sum(calls.values()) / served
        log(f"syscalls (64k): {result['per_request']:.1f} per request")
    except Exception as error:
        result["error"] = str(error)
        log(f"syscalls: {error}")
    finally:
        if tracer is not None:
            tracer.kill()
        proxy.stop()


def syscalls_section():
    data = SYSCALLS_64K
    if "per_request" not in data:
        return f"Not measured: {data.get('error')}."
    lines = [f"`strace -f -c` attached to `postern run --workers 1` while it served {data['requests']} requests "
             f"({load_text('h1-64k')}), after a warm-up of the same size. strace slows the process; the counts, not "
             f"the times, are the result.", "",
             f"**{data['per_request']:.1f} system calls per proxied 64 KiB response.**", "",
             "| system call | per request |", "|---|---|"]
    for name, per in data["calls"].items():
        if per >= 0.01:
            lines.append(f"| `{name}` | {per:.2f} |")
    return "\n".join(lines)


def parse_scenario():
    if not os.path.exists(PARSE_BENCH_BIN):
        PARSE.append({"error": f"{PARSE_BENCH_BIN} not built"})
        return
    out = subprocess.run(["taskset", "-c", str(PROXY_CPU), PARSE_BENCH_BIN, "2000000"], capture_output=True,
                         text=True, timeout=300).stdout
    for line in out.splitlines():
        name, size, iterations, median, rate, low, high = line.split()
        entry = {"case": name, "bytes": int(size), "ns": int(median) / 100, "min": int(low) / 100,
                 "max": int(high) / 100, "per_s": int(rate)}
        if shutil.which("valgrind"):
            totals = []
            for n in (20000, 40000):
                path = os.path.join(WORK, f"parse-{name}-{n}.cg")
                subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={path}", PARSE_BENCH_BIN,
                                str(n), name], capture_output=True, timeout=300)
                totals.append(callgrind_total(path))
            entry["instructions"] = (totals[1] - totals[0]) / 20000
        PARSE.append(entry)
        log(f"parse {name}: {entry['ns']:.1f} ns, {entry.get('instructions', 0):.0f} instructions")


# --- report -----------------------------------------------------------------------------------------

def rows_for(scenario, target):
    return [r for r in ROWS if r["scenario"] == scenario and r["target"] == target and "skipped" not in r]


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(x):
    if x is None:
        return "n/a"
    if x >= 1000:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.3g}"


def cell(scenario, target, key):
    values = [r.get(key) for r in rows_for(scenario, target)]
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    if len(values) == 1:
        return fmt(values[0])
    return f"{fmt(statistics.median(values))} ({fmt(min(values))}–{fmt(max(values))})"


def ratio(scenario, target, key):
    a, b = med(r.get(key) for r in rows_for(scenario, target)), med(r.get(key) for r in rows_for(scenario, "nginx"))
    if a is None or not b:
        return "n/a"
    return f"{a / b:.2f}"


def targets_in(scenario):
    order = ["direct"] + PEERS
    seen = {r["target"] for r in ROWS if r["scenario"] == scenario}
    return [t for t in order if t in seen]


def scenario_table(scenario):
    lines = []
    throughput = "MiB/s" if scenario == "s2" else ("handshakes/s" if scenario.startswith("s4") else "req/s")
    per = "handshake" if scenario.startswith("s4") else "req"
    if scenario == "s1":
        # The HTTP/1.1 table keeps the columns of the first HTTP/1.1 report, plus peak RSS and ratios.
        lines.append(f"| target | req/s | p50 ms | p99 ms | proxy CPU µs/req | proxy CPU % | kernel share of proxy CPU % "
                     f"| errors | peak RSS MiB | ratio to nginx: req/s, CPU, p99 |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|")
    elif scenario == "s6":
        lines.append("| target | req/s | p99 ms | proxy CPU µs/req | errors (wrk) | config changes written / applied "
                     "| probe requests / failed / connections closed | final config live | peak RSS MiB | ratio to nginx: req/s, CPU, p99 |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|")
    else:
        lines.append(f"| target | {throughput} | p50 ms | p99 ms | proxy CPU µs/{per} | proxy CPU % | errors | peak RSS MiB "
                     f"| ratio to nginx: {throughput}, CPU, p99 |")
        lines.append("|---|---|---|---|---|---|---|---|---|")
    for target in targets_in(scenario):
        skipped = [r for r in ROWS if r["scenario"] == scenario and r["target"] == target and "skipped" in r]
        if skipped:
            width = 9 if scenario == "s1" or scenario == "s6" else 8
            lines.append(f"| {target} | " + " | ".join([f"*{skipped[0]['skipped']}*"] + ["—"] * (width - 1)) + " |")
            continue
        rows = rows_for(scenario, target)
        errors = sum(r["errors"] for r in rows)
        key = "mibps" if scenario == "s2" else "rps"
        ratios = "—" if target in ("nginx", "direct") else \
            f"{ratio(scenario, target, key)}, {ratio(scenario, target, 'cpu_us')}, {ratio(scenario, target, 'p99')}"
        peak = fmt(max((r.get("peak_rss_mib") or 0) for r in rows)) if target != "direct" else "n/a"
        if scenario == "s1":
            lines.append(f"| {target} | {cell(scenario, target, 'rps')} | {cell(scenario, target, 'p50')} | "
                         f"{cell(scenario, target, 'p99')} | {cell(scenario, target, 'cpu_us')} | "
                         f"{cell(scenario, target, 'cpu_pct')} | {cell(scenario, target, 'kernel_pct')} | {errors} | "
                         f"{peak} | {ratios} |")
        elif scenario == "s6":
            changes = sum(r.get("changes", 0) for r in rows)
            applied = [r.get("applied") for r in rows]
            applied = str(sum(applied)) if all(a is not None for a in applied) else "not observable"
            probe = f"{sum(r.get('probe_requests', 0) for r in rows)} / {sum(r.get('probe_failed', 0) for r in rows)} / " \
                    f"{sum(r.get('probe_closed', 0) for r in rows)}"
            final = "; ".join(sorted({r.get("final_config", "?") for r in rows}))
            lines.append(f"| {target} | {cell(scenario, target, 'rps')} | {cell(scenario, target, 'p99')} | "
                         f"{cell(scenario, target, 'cpu_us')} | {errors} | {changes} / {applied} | {probe} | {final} | "
                         f"{peak} | {ratios} |")
        else:
            lines.append(f"| {target} | {cell(scenario, target, key)} | {cell(scenario, target, 'p50')} | "
                         f"{cell(scenario, target, 'p99')} | {cell(scenario, target, 'cpu_us')} | "
                         f"{cell(scenario, target, 'cpu_pct')} | {errors} | {peak} | {ratios} |")
    load_bound, proxy_bound, neither = [], [], []
    for target in targets_in(scenario):
        rows = rows_for(scenario, target)
        if not rows:
            continue
        load = med(r.get("load_busy") for r in rows)
        pct = med(r.get("cpu_pct") for r in rows)
        if load is not None and load > 90:
            load_bound.append(f"{target} ({load:.0f}%)")
        elif pct is not None and pct >= 90:
            proxy_bound.append(f"{target} ({pct:.0f}%)")
        elif pct is not None:
            neither.append(f"{target} (proxy {pct:.0f}%, load {load:.0f}%)")
    limits = []
    if load_bound:
        limits.append(f"the load core (CPU {LOAD_CPU}: load generator + upstream) was over 90% busy for "
                      f"{', '.join(load_bound)}: throughput there understates the proxy, compare CPU µs per request")
    if proxy_bound:
        limits.append(f"the proxy core was the bottleneck for {', '.join(proxy_bound)}")
    if neither:
        limits.append(f"neither core was saturated for {', '.join(neither)}: latency-bound")
    if limits:
        lines.append("")
        lines.append("What limited the runs (median busy shares): " + "; ".join(limits) + ".")
    if NOTES.get(scenario):
        lines.append("")
        for text in NOTES[scenario]:
            lines.append(f"- {text}")
    return "\n".join(lines)


def memory_table():
    lines = [f"| target | idle RSS MiB | RSS with {ROUTE_COUNT} routes MiB | peak RSS with routes MiB | "
             f"start-to-serving with {ROUTE_COUNT} routes s | ratio to nginx (routes RSS) |",
             "|---|---|---|---|---|---|"]
    nginx = next((e for e in MEMORY if e["target"] == "nginx"), {})
    for e in MEMORY:
        r = "n/a"
        if e.get("routes_rss") and nginx.get("routes_rss"):
            r = f"{e['routes_rss'] / nginx['routes_rss']:.2f}"
        lines.append(f"| {e['target']} | {fmt(e.get('idle_rss'))} | {fmt(e.get('routes_rss'))} | "
                     f"{fmt(e.get('routes_hwm'))} | {fmt(e.get('routes_ready'))} | {r} |"
                     + (f" error: {e['error']}" if e.get("error") else ""))
    return "\n".join(lines)


def load_text(mode):
    return {"h1": "`h2load --h1 -c10 -m1` (HTTP/1.1 keep-alive)",
            "h2": "`h2load -c2 -m10` (HTTP/2 over TLS, RSA-2048, on the HTTPS listener)",
            "h1-64k": "`h2load --h1 -c10 -m1` on `/64k` (HTTP/1.1 keep-alive, 65,536-byte responses)"}[mode]


def alloc_section(mode="h1"):
    data = ALLOC if mode == "h1" else ALLOC_H2
    if not data:
        return "Not run."
    if "error" in data and "per_request" not in data:
        return f"Not measured: {data['error']}."
    n1, n2 = data["requests"]
    goal = "; goal: 0" if mode == "h1" else ""
    lines = [f"`LD_PRELOAD` counter (`bench/tools/malloc-count.c`: malloc, calloc, realloc, posix_memalign, "
             f"aligned_alloc, memalign per thread) on `postern run --workers 1`; {load_text(mode)} sends "
             f"{n1} then {n2} requests on fresh connections after a warm-up; the slope (allocations of the {n2}-request "
             f"run minus those of the {n1}-request run, over the {n2 - n1} extra requests) cancels connection setup.",
             "",
             f"**{data['per_request']:.2f} heap allocations per proxied request** "
             f"({data['bytes_per_request']:.0f} bytes requested per request){goal}. Errors during the runs: "
             f"{data['errors']}.",
             "",
             "| thread | allocations, N requests | allocations, 2N requests | per extra request |",
             "|---|---|---|---|"]
    for t in data["threads"]:
        if t["n"][0] or t["2n"][0]:
            per = (t["2n"][0] - t["n"][0]) / (n2 - n1)
            lines.append(f"| {t['name']} (tid {t['tid']}) | {t['n'][0]} | {t['2n'][0]} | {per:.3f} |")
    return "\n".join(lines)


def callgrind_section(mode="h1"):
    data = CALLGRIND_BY_MODE[mode]
    if not data:
        return "Not run."
    if "per_request" not in data:
        return f"Not measured: {data.get('error')}."
    n1, n2 = data["requests"]
    suffix = PROFILE_SUFFIX[mode]
    lines = [f"`valgrind --tool=callgrind` on `postern run --workers 1` (all threads), instrumentation on after start-up, "
             f"counters zeroed before and dumped after runs of {n1} and {n2} requests ({load_text(mode)}); "
             f"per request = difference of the two totals over the {n2 - n1} extra requests.",
             "",
             f"**{data['per_request']:.0f} instructions per proxied request** (user space; the kernel's "
             f"socket work is not counted). Top functions by self cost in the {n2}-request run "
             f"(instructions per request, share of the run):",
             "",
             "| Ir/request | share | function (file) |", "|---|---|---|"]
    for per, share, function in data["top"][:20]:
        lines.append(f"| {per:.0f} | {share:.1f}% | `{function.replace('|', '/')}` |")
    lines.append("")
    lines.append(f"The raw profile is kept as `bench/results/{DATE}-callgrind-postern{suffix}.out` "
                 f"(`callgrind_annotate` or KCachegrind read it).")
    return "\n".join(lines)


def parse_section():
    if not PARSE:
        return "Not run."
    if "error" in PARSE[0]:
        return f"Not measured: {PARSE[0]['error']}."
    lines = ["`bench/http1-parse` (HTTP1 compiled as its own module with the package's hot-path flags, `-O -wmo "
             "-enforce-exclusivity=unchecked`), `HTTP1Parser.parseRequestHead` on a complete head, 2,000,000 "
             "parses per timing, median of 5 (min–max), pinned to CPU 0; instructions per parse from callgrind "
             "(40,000 minus 20,000 parses).",
             "", "| case | head bytes | ns/parse | parses/s | instructions/parse | instructions/byte |",
             "|---|---|---|---|---|---|"]
    for e in PARSE:
        ins = e.get("instructions")
        lines.append(f"| {e['case']} | {e['bytes']} | {e['ns']:.1f} ({e['min']:.1f}–{e['max']:.1f}) | {e['per_s']:,} | "
                     f"{fmt(ins)} | {fmt(ins / e['bytes']) if ins else 'n/a'} |")
    return "\n".join(lines)


def chart():
    # Scenario 8 compares Postern with itself (two routes), not the proxies: it has no bar.
    scenarios = [s for s in SCENARIO_TITLES if s != "s8" and any(r["scenario"] == s for r in ROWS)]
    proxies = [p for p in PEERS if any(r["target"] == p for r in ROWS)]
    if not scenarios or not proxies or shutil.which("gnuplot") is None:
        return None
    data = os.path.join(WORK, "chart.dat")
    labels = {"s1": "1 h1 100B", "s2": "2 h1 64KiB", "s3": "3 h1 TLS", "s4-rsa": "4a hs RSA",
              "s4-ecdsa": "4b hs ECDSA", "s4-resumed": "4c hs resumed", "s5": "5 h2 TLS", "s6": "6 churn"}
    with open(data, "w") as f:
        for s in scenarios:
            values = []
            for p in proxies:
                m = med(r.get("cpu_us") for r in rows_for(s, p))
                values.append(f"{m:.3f}" if m is not None else "NaN")
            f.write(f"\"{labels[s]}\" " + " ".join(values) + "\n")
    skipped = sorted({f"{r['target']} in {labels[r['scenario']].split()[0]}" for r in ROWS
                      if "skipped" in r and r["scenario"] in labels})
    missing = ("no bar: not measured (" + ", ".join(skipped) + ")") if skipped else ""
    script = os.path.join(WORK, "chart.gp")
    plots = ", ".join(f"'{data}' using {i + 2}:xtic(1) title '{p}'" for i, p in enumerate(proxies))
    with open(script, "w") as f:
        f.write(f"""set terminal svg size 1000,520 dynamic font 'sans,12' background '#ffffff'
set output '{CHART_FILE}'
set title 'Proxy CPU time per request (per handshake in 4a/4b), median of {ROUNDS} runs — {DATE}; lower is better'
set ylabel 'CPU µs per request (log scale)'
set logscale y
set yrange [5:2000]
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set xtics nomirror
set key top left horizontal
set label 1 '{missing}' at graph 0.99, graph 0.90 right font ',10'
plot {plots}
""")
    subprocess.run(["gnuplot", script], check=False, capture_output=True)
    return CHART_FILE if os.path.exists(CHART_FILE) else None


def versions():
    def run(argv):
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=20)
            return (p.stdout + p.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return "?"
    commit = run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
    return {
        "nginx": run(["nginx", "-v"]).replace("nginx version: ", ""),
        "haproxy": run(["haproxy", "-v"]).split(" - ")[0],
        "h2o": run(["h2o", "--version"]),
        "envoy": (re.search(r"/(\d+\.\d+\.\d+)/", run([ENVOY_BIN, "--version"])) or [None, "?"])[1] if ENVOY_BIN else "n/a",
        "wrk": run(["wrk", "-v"]).split(" [")[0],
        "h2load": run(["h2load", "--version"]),
        "postern": commit,
    }


def write_report(load_before, load_after, elapsed):
    os.makedirs(RESULTS_DIR, exist_ok=True)
    chart_path = chart()
    v = versions()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    run_label = REPORT_META.get("run_label") or (
        f"{datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} at commit {v['postern']}")
    REPORT_META["run_label"] = run_label
    header = [
        f"Run on {run_label}; "
        f"machine: {os.cpu_count()} CPUs ({cpu}), Linux {os.uname().release}. "
        f"Versions: {v['nginx']}, {v['haproxy']}, {v['h2o']}, Envoy {v['envoy']}, {v['wrk']}, {v['h2load']}.",
        "",
        f"Layout: each proxy under test alone on CPU {PROXY_CPU} with one worker (nginx `worker_processes 1`, HAProxy "
        f"`nbthread 1`, h2o `num-threads: 1`, Envoy `--concurrency 1`, Postern `--workers 1`); the upstream (nginx, "
        f"fixed 100-byte and 64 KiB bodies, keep-alive) and the load generator on CPU {LOAD_CPU}. Upstream keep-alive "
        f"is on for every proxy (nginx `keepalive 64`, HAProxy `http-reuse always`, Envoy's default pool with circuit "
        f"breakers raised, h2o's default pool, Postern's per-worker pool). Each run: {WARMUP} s warm-up, {DURATION} s "
        f"measured; {ROUNDS} rounds with the proxies interleaved (A B C … A B C …). Cells are medians with (min–max); "
        f"CPU µs per request is the proxy's utime+stime (its whole process tree, reaped children included) from "
        f"`/proc/PID/stat` over the requests served (clock tick {1e6 / CLK_TCK:.0f} µs). Peak RSS is VmHWM summed over "
        f"the process tree. Ratios are to nginx's median (above 1 is better for throughput, below 1 for CPU and p99).",
        "",
        f"Machine load (1/5/15-min load average) before: {' '.join(load_before)}, after: {' '.join(load_after)}. "
        f"Suite time: {elapsed / 60:.1f} min.",
    ]
    body = []
    for scenario, title in SCENARIO_TITLES.items():
        if any(r["scenario"] == scenario for r in ROWS):
            body += [f"### {title}", "", scenario_table(scenario), ""]
    if MEMORY:
        body += [f"### 7. Memory: idle, and with {ROUTE_COUNT} routes", "",
                 f"RSS summed over the process tree 1 s after the proxy first answered, no traffic since. "
                 f"{ROUTE_COUNT} routes: path prefixes `/r0/` … `/r{ROUTE_COUNT - 1}/` on one host, all to the same "
                 f"upstream (nginx: `location` blocks; HAProxy: `use_backend … if {{ path_beg }}` rules; h2o: `paths`; "
                 f"Envoy: RDS routes; Postern: {ROUTE_COUNT // 100} Ingresses of 100 paths); \"start-to-serving\" is "
                 f"from process start until the last route answers 200.", "", memory_table(), ""]
    body += ["### Postern: heap allocations per proxied request (HTTP/1.1 keep-alive)", "", alloc_section(), "",
             "### Postern: callgrind instructions per proxied request", "", callgrind_section(), ""]
    if ALLOC_H2:
        body += ["### Postern: heap allocations per proxied request (HTTP/2 over TLS)", "", alloc_section("h2"), ""]
    if CALLGRIND_H2:
        body += ["### Postern: callgrind instructions per proxied request (HTTP/2 over TLS)", "",
                 callgrind_section("h2"), ""]
    if CALLGRIND_64K:
        body += ["### Postern: callgrind instructions per proxied 64 KiB response (HTTP/1.1)", "",
                 callgrind_section("h1-64k"), ""]
    if SYSCALLS_64K:
        body += ["### Postern: system calls per proxied 64 KiB response (HTTP/1.1)", "", syscalls_section(), ""]
    body += [
             "### Micro-benchmark: HTTP/1.1 request-head parse", "", parse_section(), ""]
    if chart_path:
        body += ["### Chart", "", f"![CPU µs per request by scenario and proxy]({os.path.basename(chart_path)})", ""]
    details = ["<details><summary>Every run</summary>", "",
               "| scenario | target | round | req/s | MiB/s | p50 ms | p99 ms | CPU µs/req | CPU % | load core % | errors |",
               "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in ROWS:
        if "skipped" in r:
            continue
        details.append(f"| {r['scenario']} | {r['target']} | {r['round']} | {fmt(r['rps'])} | {fmt(r.get('mibps'))} | "
                       f"{fmt(r.get('p50'))} | {fmt(r.get('p99'))} | {fmt(r.get('cpu_us'))} | {fmt(r.get('cpu_pct'))} | "
                       f"{fmt(r.get('load_busy'))} | {r['errors']} |")
    details += ["", "</details>"]
    with open(RESULT_FILE, "w") as f:
        f.write(f"# Benchmark suite — {DATE}\n\n" + "\n".join(header + [""] + body + details) + "\n")
    with open(os.path.join(RESULTS_DIR, f"{DATE}.json"), "w") as f:
        json.dump({"rows": ROWS, "memory": MEMORY, "alloc": ALLOC, "callgrind": CALLGRIND, "parse": PARSE,
                   "alloc_h2": ALLOC_H2, "callgrind_h2": CALLGRIND_H2,
                   "callgrind_64k": CALLGRIND_64K, "syscalls_64k": SYSCALLS_64K,
                   "notes": NOTES, "meta": {"load_before": load_before, "load_after": load_after,
                                            "elapsed": elapsed, "run_label": run_label}}, f, indent=1, default=str)
    update_summary(header, body, chart_path)
    log(f"report: {os.path.relpath(RESULT_FILE, ROOT)}" + (f", chart: {os.path.relpath(chart_path, ROOT)}" if chart_path else ""))


BEGIN, END = "<!-- bench/run: begin (generated; edit bench/suite.py) -->", "<!-- bench/run: end -->"


def update_summary(header, body, chart_path):
    """Replaces the generated block of bench/RESULTS.md; sections outside the markers are left alone."""
    rel = os.path.relpath(RESULT_FILE, os.path.dirname(SUMMARY_FILE))
    block = [BEGIN, "", "## Benchmark suite: Postern vs nginx, HAProxy, h2o and Envoy", "",
             f"Reproduce with `make bench` (`bench/run`); how to read it: [bench/README.md](README.md). "
             f"Full report: [`{os.path.basename(RESULT_FILE)}`]({rel}).", ""] + header + [""]
    if chart_path:
        block += [f"![CPU µs per request by scenario and proxy]({os.path.relpath(chart_path, os.path.dirname(SUMMARY_FILE))})", ""]
    # The HTTP/1.1 section keeps its title so links to it stay valid.
    for line in body:
        if line.startswith("### 1. HTTP/1.1 keep-alive, 100-byte responses"):
            line = "## HTTP/1.1 keep-alive, 100-byte responses: Postern vs nginx (and peers)"
        elif line.startswith("### ") and "Chart" not in line:
            line = "## " + line[4:]
        elif line.startswith("### Chart") or line.startswith("![CPU"):
            continue
        block.append(line)
    block += [END]
    text = open(SUMMARY_FILE).read() if os.path.exists(SUMMARY_FILE) else "# Benchmark results\n\n"
    if BEGIN in text and END in text:
        start, end = text.index(BEGIN), text.index(END) + len(END)
        text = text[:start] + "\n".join(block) + text[end:]
    else:
        # First run: the hand-written HTTP/1.1 section of bench/run-http1.sh's era is replaced in place.
        old = "## HTTP/1.1 keep-alive, 100-byte responses: Postern vs nginx"
        if old in text:
            start = text.index(old)
            nxt = text.find("\n## ", start + len(old))
            end = nxt + 1 if nxt >= 0 else len(text)
            text = text[:start] + "\n".join(block) + "\n\n" + text[end:]
        else:
            text = text.rstrip() + "\n\n" + "\n".join(block) + "\n"
    with open(SUMMARY_FILE, "w") as f:
        f.write(text)


# --- main -------------------------------------------------------------------------------------------

UPSTREAM = Upstream()


def report_from(path):
    """Rewrites the report from a saved DATE.json (REPORT_FROM=…): for changing the report's format."""
    saved = json.load(open(path))
    ROWS.extend(saved["rows"])
    MEMORY.extend(saved["memory"])
    ALLOC.update(saved["alloc"])
    CALLGRIND.update(saved["callgrind"])
    ALLOC_H2.update(saved.get("alloc_h2", {}))
    CALLGRIND_H2.update(saved.get("callgrind_h2", {}))
    CALLGRIND_64K.update(saved.get("callgrind_64k", {}))
    SYSCALLS_64K.update(saved.get("syscalls_64k", {}))
    PARSE.extend(saved["parse"])
    NOTES.update(saved["notes"])
    meta = saved.get("meta", {})
    REPORT_META.update(meta)
    write_report(meta.get("load_before", ["?"] * 3), meta.get("load_after", ["?"] * 3), meta.get("elapsed", 0))


def main():
    global ENVOY_BIN
    if ENV.get("REPORT_FROM"):
        report_from(ENV["REPORT_FROM"])
        return
    os.sched_setaffinity(0, {LOAD_CPU})   # this script and what it runs (wrk, h2load, curl) stay on the load core
    if "envoy" in PEERS and not ENVOY_BIN:
        PEERS.remove("envoy")
        log("envoy: no binary (ENVOY_BIN unset): not measured")
    if "postern" in PEERS and not os.path.exists(POSTERN_BIN):
        raise SystemExit(f"postern not found at {POSTERN_BIN}")
    load_before = loadavg()
    t0 = time.time()
    make_certificates()
    UPSTREAM.start()
    log(f"upstream nginx on 127.0.0.1:{UPSTREAM.port} (CPU {LOAD_CPU}); peers: {', '.join(PEERS)}; "
        f"scenarios: {', '.join(SCENARIOS)}; load average {' '.join(load_before)}")
    steps = {"1": scenario_1, "2": scenario_2, "3": scenario_3, "4": scenario_4, "4r": scenario_4_resumed,
             "5": scenario_5, "6": scenario_6, "8": scenario_8,
             "7": scenario_7, "alloc": alloc_scenario, "callgrind": callgrind_scenario, "parse": parse_scenario,
             "alloc-h2": lambda: alloc_scenario("h2"), "callgrind-h2": lambda: callgrind_scenario("h2"),
             "callgrind-64k": lambda: callgrind_scenario("h1-64k"), "syscalls-64k": syscalls_scenario}
    for name in SCENARIOS:
        if name in steps:
            log(f"scenario {name}")
            steps[name]()
    write_report(load_before, loadavg(), time.time() - t0)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
    finally:
        cleanup()
