#!/usr/bin/env python3
"""Forklift against its peers: the C libfcgi responder under spawn-fcgi, php-fpm 8.2 (static
pool) and Perl FCGI::ProcManager, each with the same worker count on its own unix socket,
measured in interleaved rounds by the C load generator benchmarks/loadgen/fcgi-load.c.

Cases (2 workers unless said): hello world with a new connection per request and with a kept
connection (FCGI_KEEP_CONN); a 64 KiB response; a 1 MiB POST body echoed; a handler that takes
5 ms (4 workers, 8 clients: throughput against workers / 5 ms); 64 clients on 4 workers (p99,
max and fairness); end to end through nginx with wrk; hello world at concurrency 1..64 (the
chart). Each of those is closed loop: every client sends again once answered, so a faster
server also loads the shared cores more. The fixed-rate cases (hello, 64 KiB, 1 MiB echo, and
hello on 4 workers with up to 64 clients) offer every server the same requests per second on a
schedule and time each request from when it was due: latency at equal load. Then Forklift
alone: recycling (max_requests = 100 against 0), worker replacement time (a worker leaving to
the new worker waiting for a connection, from perf's scheduler and syscall tracepoints), idle
CPU of every server's processes over --idle-seconds, and Private_Dirty per idle worker.

It installs what it needs when missing (spawn-fcgi, libfcgi-dev, php8.2-fpm, libfcgi-perl,
libfcgi-procmanager-perl, nginx-light, wrk; matplotlib from pip), builds Forklift in release
mode (swift build -c release), and compiles the load generator and the C peer into
.build-bench/. A peer that cannot be installed is skipped, and said so.

Usage: python3 benchmarks/peers.py [--quick] [--rounds 5] [--seconds 2] [--idle-seconds 60]
                                   [--servers forklift,c,php,perl] [--results DIR] [--no-install]
Results: benchmarks/results/peers.md, peers.json and peers.png (--quick: .build-bench/results-quick/).
Figures are ratios from one run on the machine at hand; they are not tests.
"""
import argparse, json, os, platform, re, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fcgi

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, ".build-bench")
NAMES = {"forklift": "Forklift", "c": "C libfcgi (spawn-fcgi)", "php": "php-fpm 8.2 (static)", "perl": "Perl FCGI::ProcManager"}
HELLO = "Hello, world!"
# The load generator's threads (--client-threads): one per core by default. With one thread for
# 2 connections on this 2-core VM the cores sat 50 % idle and every server waited on the
# client's wake-ups (kept hello: C 39k/s, Forklift 43k/s, php-fpm 28k/s); with two, the cores
# are busy and the servers are what is measured (104k, 115k, 52k). BENCHMARKS.md has the trial.
CLIENT_THREADS = os.cpu_count() or 1
# --forklift-scheduling: Forklift's pools' process_scheduling (docs/deploy.md); batch-when-idle, Forklift's default.
FORKLIFT_SCHEDULING = "batch-when-idle"

def say(text=""):
    print(text, flush=True)

def run(command, **kwargs):
    return subprocess.run(command, check=True, **kwargs)

def output(command):
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=60).stdout + ""
    except (OSError, subprocess.SubprocessError):
        return ""

# ---------- what it needs ----------

def installed(package):
    return "install ok installed" in output(["dpkg-query", "-W", "-f=${Status}", package])

SERVICES = {"nginx-light": "nginx", "php8.2-fpm": "php8.2-fpm"}  # packages whose postinst starts a daemon

def apt_install(groups):
    """apt-get install of each group of packages on its own (one that cannot be installed does
    not keep the others out), without letting a package's postinst start a system service, and
    with the services of the packages it installed disabled at boot (as scripts/install-deps.sh
    does); returns the packages still missing."""
    missing = [[p for p in group if not installed(p)] for group in groups]
    missing = [group for group in missing if group]
    if not missing:
        return []
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    say(f"installing: {' '.join(p for group in missing for p in group)}")
    policy, own_policy = "/usr/sbin/policy-rc.d", False
    try:
        subprocess.run(sudo + ["apt-get", "update", "-qq"], check=False)
        if not os.path.exists(policy):
            subprocess.run(sudo + ["sh", "-c", f"printf '#!/bin/sh\\nexit 101\\n' > {policy} && chmod 755 {policy}"], check=False)
            own_policy = True
        env = dict(os.environ, RUNLEVEL="1", DEBIAN_FRONTEND="noninteractive")
        for group in missing:
            subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + group, env=env, check=False)
    finally:
        if own_policy:
            subprocess.run(sudo + ["rm", "-f", policy], check=False)
    for package in (p for group in missing for p in group):
        if package in SERVICES and installed(package):
            subprocess.run(sudo + ["sh", "-c", f"update-rc.d {SERVICES[package]} disable >/dev/null 2>&1 || true"], check=False)
    return [p for group in missing for p in group if not installed(p)]

def prepare(args, names):
    """Installs and builds what `names` need; returns {server: reason} for the peers that must be skipped."""
    skipped = {}
    wanted = {
        "c": ["spawn-fcgi", "libfcgi-dev"],
        "php": ["php8.2-fpm"],
        "perl": ["libfcgi-perl", "libfcgi-procmanager-perl"],
        "nginx": ["nginx-light"],
        "wrk": ["wrk"],
        "forklift": ["libfcgi-dev", "pkg-config"],
    }
    wanted = {k: v for k, v in wanted.items() if k in names or (k in ("nginx", "wrk") and not args.no_nginx)}
    if not args.no_install:
        still = apt_install(list(wanted.values()))
        if still:
            say(f"could not install: {' '.join(still)}")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            say("installing: matplotlib (pip)")
            subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "matplotlib"], check=False)
    for server, packages in wanted.items():
        missing = [p for p in packages if not installed(p)]
        if missing:
            skipped[server] = f"not installed: {' '.join(missing)}"
    for tool, server in (("spawn-fcgi", "c"), ("php-fpm8.2", "php"), ("nginx", "nginx"), ("wrk", "wrk")):
        if server in wanted and server not in skipped and not (shutil.which(tool) or os.path.exists(f"/usr/sbin/{tool}")):
            skipped[server] = f"{tool} not found"
    os.makedirs(BENCH, exist_ok=True)
    say("building: cc -O2 benchmarks/loadgen/fcgi-load.c")
    run(["cc", "-O2", "-Wall", "-o", f"{BENCH}/fcgi-load", f"{ROOT}/benchmarks/loadgen/fcgi-load.c", "-lpthread", "-lm"])
    if "c" in wanted and "c" not in skipped:
        run(["cc", "-O2", "-Wall", "-o", f"{BENCH}/hello-libfcgi", f"{ROOT}/benchmarks/peers/hello.c", "-lfcgi"])
    if not args.no_build:
        say("building: swift build -c release (once; a no-op when up to date)")
        run(["swift", "build", "-c", "release", "--package-path", ROOT])
    return skipped

# ---------- servers ----------

def tree(root):
    return [root] + fcgi.descendants(root)

def stop_process(proc, sig=signal.SIGTERM, wait=20):
    if proc and proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

def wait_for_socket(path, deadline=60):
    end = time.time() + deadline
    while time.time() < end:
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            s.close()
            return True
        except OSError:
            time.sleep(0.05)
    return False

class Peer:
    """A server on its own unix socket in the run's temporary folder."""
    name = ""
    def __init__(self, directory, workers, tag=""):
        self.dir = os.path.join(directory, f"{self.name}{tag}-{workers}")
        os.makedirs(self.dir, exist_ok=True)
        self.sock = os.path.join(self.dir, "fcgi.sock")
        self.workers = workers
        self.proc = None
        self.pids_started = []

    def roots(self):
        return [self.proc.pid] if self.proc else []

    def processes(self):
        """(pid, role) of every process of this server."""
        found = []
        for root in self.roots():
            for pid in tree(root):
                found.append((pid, self.role(pid, root)))
        return found

    def workers_pids(self):
        return [pid for pid, role in self.processes() if role == "worker"]

    def role(self, pid, root):
        return "master" if pid == root else "worker"

    def ready(self):
        if not wait_for_socket(self.sock):
            raise RuntimeError(f"{self.name}: no socket {self.sock}")
        deadline = time.time() + 30
        while len(self.workers_pids()) < self.workers and time.time() < deadline:
            time.sleep(0.05)

    def stop(self):
        stop_process(self.proc)

class Forklift(Peer):
    name = "forklift"
    def __init__(self, directory, workers, build, plugins=("hello", "echo", "behaviors"), pool_extra="max_requests = 0", log_level="notice", tag="",
                 standby=0):
        super().__init__(directory, workers, tag)
        self.standby = standby
        libraries = {"hello": ("libHello.so", "/hello", 'settings = { greeting = "Hello" }'),
                     "echo": ("libEcho.so", "/echo", ""),
                     "behaviors": ("libForkliftTestBehaviors.so", "/behaviors", "")}
        conf = os.path.join(self.dir, "conf.d")
        os.makedirs(conf, exist_ok=True)
        self.log_path = os.path.join(self.dir, "forklift.log")
        text = (f'[global]\npid = "{self.dir}/forklift.pid"\nerror_log = "{self.log_path}"\nlog_level = "{log_level}"\n'
                f'die_timeout = "10s"\n\n[pool.www]\nlisten = "{self.sock}"\nlisten_mode = "0666"\npm = "static"\nmax_children = {workers}\n'
                f'{pool_extra}\nstandby_workers = {standby}\nprocess_scheduling = "{FORKLIFT_SCHEDULING}"\n')
        for plugin in plugins:
            library, route, settings = libraries[plugin]
            text += f'\n[pool.www.plugin.{plugin}]\npath = "{os.path.abspath(build)}/{library}"\nroute = "{route}"\n{settings}\n'
        with open(os.path.join(conf, "00-bench.toml"), "w") as f:
            f.write(text)
        self.proc = subprocess.Popen([f"{build}/forklift", "run", "--conf", conf] + fcgi.ROOT_FLAG, stdout=subprocess.DEVNULL, stderr=open(self.log_path + ".stderr", "w"))
        deadline = time.time() + 120
        while "forklift is ready" not in self.log():
            if time.time() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"forklift did not start; see {self.log_path}")
            time.sleep(0.05)
        self.ready()

    def log(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except OSError:
            return ""

    def role(self, pid, root):
        title = fcgi.title(pid)
        for role in ("master", "host", "worker", "standby"):
            if title.startswith(f"forklift: {role}"):
                return role
        return "other"

class CResponder(Peer):
    """hello.c under spawn-fcgi: spawn-fcgi forks the children and exits; they are stopped by pid."""
    name = "c"
    def __init__(self, directory, workers):
        super().__init__(directory, workers)
        out = subprocess.run(["spawn-fcgi", "-s", self.sock, "-M", "0666", "-b", "511", "-F", str(workers), "--", f"{BENCH}/hello-libfcgi"],
                             capture_output=True, text=True, check=True).stdout
        self.children = [int(pid) for pid in re.findall(r"PID: (\d+)", out)]
        self.ready()

    def roots(self):
        return self.children

    def role(self, pid, root):
        return "worker"

    def stop(self):
        for pid in self.children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.time() + 10
        while any(os.path.exists(f"/proc/{pid}") and fcgi.title(pid) for pid in self.children) and time.time() < deadline:
            time.sleep(0.05)

class PhpFpm(Peer):
    name = "php"
    def __init__(self, directory, workers):
        super().__init__(directory, workers)
        self.script = os.path.join(self.dir, "hello.php")
        shutil.copy(os.path.join(ROOT, "benchmarks/peers/hello.php"), self.script)
        conf = os.path.join(self.dir, "php-fpm.conf")
        user = "user = root\n" if os.geteuid() == 0 else ""
        with open(conf, "w") as f:
            f.write(f"[global]\npid = {self.dir}/php-fpm.pid\nerror_log = {self.dir}/php-fpm.log\ndaemonize = no\n\n"
                    f"[www]\n{user}listen = {self.sock}\nlisten.mode = 0666\nlisten.backlog = 511\n"
                    f"pm = static\npm.max_children = {workers}\npm.max_requests = 0\n")
        command = ["php-fpm8.2", "--nodaemonize", "--fpm-config", conf] + (["--allow-to-run-as-root"] if os.geteuid() == 0 else [])
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.ready()

    def stop(self):
        stop_process(self.proc, signal.SIGQUIT)  # php-fpm's graceful stop

class Perl(Peer):
    name = "perl"
    def __init__(self, directory, workers):
        super().__init__(directory, workers)
        self.proc = subprocess.Popen(["perl", os.path.join(ROOT, "benchmarks/peers/hello.pl"), self.sock, str(workers)],
                                     stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "perl.log"), "w"))
        self.ready()

def start_servers(names, directory, workers, build):
    servers = {}
    for name in names:
        try:
            if name == "forklift":
                servers[name] = Forklift(directory, workers, build)
            elif name == "c":
                servers[name] = CResponder(directory, workers)
            elif name == "php":
                servers[name] = PhpFpm(directory, workers)
            elif name == "perl":
                servers[name] = Perl(directory, workers)
        except (RuntimeError, OSError, subprocess.CalledProcessError) as error:
            say(f"  {NAMES[name]}: did not start ({error}); skipped")
    return servers

def stop_servers(servers):
    for server in servers.values():
        server.stop()

# ---------- measuring ----------

class Case:
    def __init__(self, key, title, path, connections=2, keep=False, query="", body=0, expect=None, min_length=-1, workers=2, http=False, rate=0):
        # rate: requests per second offered on a schedule, on up to `connections` (open loop);
        # 0: each client sends again as soon as it is answered (closed loop)
        self.key, self.title, self.path, self.connections, self.keep, self.rate = key, title, path, connections, keep, rate
        self.query, self.body, self.expect, self.min_length, self.workers, self.http = query, body, expect, min_length, workers, http

def loadgen(server, case, seconds, warmup):
    command = [f"{BENCH}/fcgi-load", "--connect", server.sock, "-c", str(case.connections), "-t", str(CLIENT_THREADS), "-d", str(seconds),
               "-w", str(warmup), "--path", case.path, "--quiet", "--timeout", "10",
               # php-fpm finds its script by SCRIPT_FILENAME; every server gets the same params
               "-p", f"SCRIPT_FILENAME={getattr(server, 'script', '/var/www/hello.php')}"]
    if case.keep:
        command.append("-k")
    if case.rate:
        command += ["-R", str(case.rate)]
    if case.query:
        command += ["--query", case.query]
    if case.body:
        command += ["--body-size", str(case.body)]
    if case.expect:
        command += ["--expect-substring", case.expect]
    if case.min_length >= 0:
        command += ["--expect-min-length", str(case.min_length)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + warmup + 60)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"fcgi-load failed: {result.stderr.strip()}")
    measured = json.loads(lines[-1])
    if case.rate:
        measured["per_connection"] = {}  # on a schedule, the first free connection takes the next request: no fairness to see
    return measured

def wrk(port, seconds, connections=8):
    """wrk against nginx; the same figures as the load generator's."""
    result = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", f"http://127.0.0.1:{port}/hello"],
                            capture_output=True, text=True, timeout=seconds + 60)
    text = result.stdout
    def ms(value, unit):
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    p = {q: ms(*re.search(rf"\s{q}%\s+([\d.]+)(us|ms|s)\b", text).groups()) for q in ("50", "99")}
    maximum = re.search(r"Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)\b", text)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sock_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(int(x) for x in sock_errors.groups()) if sock_errors else 0)
    return {"rps": rps, "errors": errors, "latency_ms": {"p50": p["50"], "p99": p["99"], "max": ms(*maximum.groups()) if maximum else float("nan")},
            "per_connection": {}}

class Nginx:
    """One nginx in the run's temporary folder, on loopback: a port per FastCGI server."""
    def __init__(self, directory, servers):
        self.dir = os.path.join(directory, "nginx")
        os.makedirs(self.dir, exist_ok=True)
        self.ports = {}
        blocks = ""
        for name, server in servers.items():
            port = free_port()
            self.ports[name] = port
            blocks += (f"  server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      include /etc/nginx/fastcgi_params;\n"
                       f"      fastcgi_param SCRIPT_FILENAME {getattr(server, 'script', '/var/www/hello.php')};\n"
                       f"      fastcgi_param DOCUMENT_URI $document_uri;\n      fastcgi_pass unix:{server.sock};\n    }}\n  }}\n")
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"worker_processes 1;\ndaemon off;\npid {self.dir}/nginx.pid;\nerror_log {self.dir}/error.log;\n"
                    f"events {{ worker_connections 1024; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {self.dir}/body;\n"
                    f"  fastcgi_temp_path {self.dir}/fastcgi;\n  proxy_temp_path {self.dir}/proxy;\n  uwsgi_temp_path {self.dir}/uwsgi;\n"
                    f"  scgi_temp_path {self.dir}/scgi;\n{blocks}}}\n")
        self.proc = subprocess.Popen(["nginx", "-p", self.dir, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for port in self.ports.values():
            end = time.time() + 10
            while time.time() < end:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.05)

    def stop(self):
        stop_process(self.proc, signal.SIGQUIT)

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port

def rounds(servers, case, args, measure):
    """Interleaved rounds: every server once per round, the order rotating each round."""
    runs = {name: [] for name in servers}
    order = list(servers)
    for index in range(args.rounds):
        turn = order[index % len(order):] + order[:index % len(order)]
        for name in turn:
            try:
                runs[name].append(measure(name))
            except (RuntimeError, AttributeError, subprocess.SubprocessError) as error:
                say(f"    {name}: round {index + 1} failed: {error}")
    return runs

def summary(runs):
    """Median, min and max of throughput, medians of the latencies, the sum of the errors."""
    rps = [r["rps"] for r in runs]
    if not rps:
        return None
    lat = lambda key: statistics.median(r["latency_ms"][key] for r in runs)
    per = [r.get("per_connection", {}) for r in runs]
    return {"rps": statistics.median(rps), "rps_min": min(rps), "rps_max": max(rps), "p50_ms": lat("p50"), "p99_ms": lat("p99"),
            "p999_ms": statistics.median(r["latency_ms"].get("p999", float("nan")) for r in runs),
            "max_ms": max(r["latency_ms"]["max"] for r in runs), "errors": sum(r["errors"] for r in runs),
            "reconnects": sum(r.get("reconnects", 0) for r in runs),
            # fairness within each round: Jain's index and the busiest client's requests over the least busy one's
            "jain": min((p["jain"] for p in per if "jain" in p), default=None),
            "clients_max_over_min": max((p["max"] / p["min"] if p["min"] else float("inf") for p in per if "min" in p), default=None),
            "rounds": len(runs),
            # each round's, in the order they ran: a median hides whether one round or all of them were slow
            "round_rps": rps, "round_p99_ms": [r["latency_ms"]["p99"] for r in runs]}

def print_case(title, results):
    say(f"\n  {title}")
    base = results.get("forklift")
    for name, s in results.items():
        if not s:
            continue
        ratio = ""
        if base and name != "forklift":
            ratio = f"  Forklift {base['rps'] / s['rps']:.2f}x" if s["rps"] else ""
        fair = f", Jain {s['jain']:.3f}, clients max/min {s['clients_max_over_min']:.2f}" if s.get("jain") else ""
        say(f"    {NAMES[name]:26} {s['rps']:9.0f}/s ({s['rps_min']:.0f}-{s['rps_max']:.0f})  p50 {s['p50_ms']:.3f} ms  p99 {s['p99_ms']:.3f} ms"
            f"  max {s['max_ms']:.1f} ms  errors {s['errors']}{fair}{ratio}")

def measure_cases(servers, cases, args, results, nginx=None):
    for case in cases:
        if case.http:
            if not nginx:
                continue
            measure = lambda name: wrk(nginx.ports[name], args.seconds)
        else:
            measure = lambda name, case=case: loadgen(servers[name], case, args.seconds, args.warmup)
        runs = rounds(servers, case, args, measure)
        results[case.key] = {"title": case.title, "workers": case.workers, "connections": case.connections,
                             "servers": {name: summary(r) for name, r in runs.items()}}
        print_case(case.title, results[case.key]["servers"])

# ---------- Forklift alone: recycling, replacement, idle, memory ----------

def cpu_sample(pid):
    """(utime+stime in seconds, schedstat run time in seconds, context switches)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])
        with open(f"/proc/{pid}/schedstat") as f:
            run_ns = int(f.read().split()[0])
        switches = 0
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    switches += int(line.split()[1])
        return ticks / os.sysconf("SC_CLK_TCK"), run_ns / 1e9, switches
    except (OSError, IndexError, ValueError):
        return None

def idle_cost(servers, seconds):
    """Every server's processes over `seconds` with no request: CPU % of one core, wakeups/s."""
    before = {name: {pid: (role, cpu_sample(pid)) for pid, role in s.processes()} for name, s in servers.items()}
    time.sleep(seconds)
    report = {}
    for name, server in servers.items():
        roles = {}
        for pid, (role, first) in before[name].items():
            last = cpu_sample(pid)
            if not first or not last:
                continue
            entry = roles.setdefault(role, {"processes": 0, "stat_cpu_s": 0.0, "run_s": 0.0, "switches": 0})
            entry["processes"] += 1
            entry["stat_cpu_s"] += last[0] - first[0]
            entry["run_s"] += last[1] - first[1]
            entry["switches"] += last[2] - first[2]
        for entry in roles.values():
            entry["stat_percent"] = entry["stat_cpu_s"] / seconds * 100
            entry["percent"] = entry["run_s"] / seconds * 100
            entry["wakeups_per_s"] = entry["switches"] / seconds
        report[name] = roles
    return report

def private_dirty(server):
    values = [fcgi.smaps(pid).get("Private_Dirty", 0) for pid in server.workers_pids()]
    return {"median_kib": statistics.median(values) if values else None, "max_kib": max(values) if values else None, "workers": len(values)}

def traced_replacements(server, drive):
    """Worker leaving (its "leaving PID" to the host, else its exit_group) -> its replacement
    waiting for a connection (its first epoll_wait), from
    perf's sched and syscall tracepoints, system-wide (per-process tracing that follows forks
    made each fork several milliseconds slower), kept to this host's workers, while `drive()`
    makes workers leave; perf's times are microseconds. None without perf."""
    perf = shutil.which("perf")
    hosts = [pid for pid, role in server.processes() if role == "host"]
    if not perf or not hosts:
        return None
    host = hosts[0]
    # Standbys (standby_workers) waiting when the trace starts are ours too, not serving.
    ours = set(server.workers_pids())
    # Workers already waiting when the trace starts may never enter epoll_wait again before
    # they leave; their ready line was written before the trace, so any short write of theirs
    # is the notice.
    serving = set(ours)
    ours |= {pid for pid, role in server.processes() if role == "standby"}
    data = os.path.join(server.dir, f"perf-{time.monotonic_ns()}.data")
    only_forklift = 'comm ~ "forklift*"'
    recorder = subprocess.Popen([perf, "record", "-q", "-a", "-o", data, "-e", "sched:sched_process_exit", "-e", "sched:sched_process_fork",
                                 "-e", "syscalls:sys_enter_exit_group", "--filter", only_forklift,
                                 # A worker's "leaving PID" to its host (responses are longer).
                                 "-e", "syscalls:sys_enter_write", "--filter", only_forklift + " && count < 24",
                                 "-e", "syscalls:sys_enter_epoll_wait", "--filter", only_forklift,
                                 "-e", "syscalls:sys_enter_epoll_pwait", "--filter", only_forklift,
                                 "-e", "syscalls:sys_exit_wait4", "--filter", only_forklift,
                                 "-e", "syscalls:sys_enter_clone", "--filter", only_forklift,
                                 "-e", "syscalls:sys_exit_clone", "--filter", only_forklift],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    drive()
    time.sleep(0.2)
    recorder.send_signal(signal.SIGINT)
    try:
        recorder.wait(timeout=60)
    except subprocess.TimeoutExpired:
        recorder.kill()
        recorder.wait()
        return None
    events = []
    for line in output([perf, "script", "-i", data, "-F", "pid,time,event,trace"]).splitlines():
        m = re.match(r"\s*(\d+)\s+([\d.]+):\s+(\S+):\s*(.*)", line)
        if m:
            events.append((float(m.group(2)), int(m.group(1)), m.group(3), m.group(4)))
    if os.path.exists(data):
        os.unlink(data)
    exits, forks, first_wait, reaped, clones, clone_entered, notices = [], [], {}, {}, [], None, {}
    releases = []  # the host's writes of a slot to a standby worker's eventfd
    for at, pid, event, trace in sorted(events):
        # A slot posted to a standby's eventfd: 8 bytes (a signal's byte to the host's own pipe is 1).
        count = re.search(r"count: 0x([0-9a-f]+)", trace) if event.endswith("sys_enter_write") and pid == host else None
        if count and int(count.group(1), 16) == 8 and getattr(server, "standby", 0):
            releases.append(at)
            continue
        if event.endswith("sys_enter_clone") and pid == host:
            clone_entered = at
            continue
        if event.endswith("sys_exit_clone") and pid == host and clone_entered is not None:
            clones.append((at - clone_entered) * 1000)  # the host's fork() itself
            clone_entered = None
            continue
        if event.endswith("sys_exit_wait4") and pid == host:
            ret = re.search(r"0x([0-9a-f]+)", trace)
            if ret and int(ret.group(1), 16) in ours:
                reaped.setdefault(int(ret.group(1), 16), at)
            continue
        if event.endswith("sched_process_fork") and pid == host:
            child = re.search(r"child_pid=(\d+)", trace)
            if child:
                forks.append((at, int(child.group(1))))
                ours.add(int(child.group(1)))
        elif event.endswith("sys_enter_write") and pid in ours and (pid in first_wait or pid in serving):
            notices[pid] = at  # its last short write once serving: "leaving PID"
        elif event.endswith("sys_enter_exit_group") and pid in ours:
            # The worker leaves when it tells its host (the host forks the replacement then;
            # the worker may be preempted before its exit_group), or at its exit_group.
            exits.append((min(at, notices.get(pid, at)), at, pid))
        elif "epoll" in event and pid in ours and pid not in first_wait:
            first_wait[pid] = at
    # Each leaving worker with the host's next start of a replacement after it: a fork (its
    # child's first epoll_wait ends it) or, with standby_workers, a release (the first
    # epoll_wait after it of a process not yet matched: a standby waits in poll until then).
    starts = sorted([(at, child) for at, child in forks] + [(at, None) for at in releases])
    total, to_reap, to_fork, to_wait, released = [], [], [], [], 0
    matched = set(serving)
    used = 0
    for left, exited, pid in sorted(exits):
        while used < len(starts) and starts[used][0] < left:
            used += 1
        if used >= len(starts):
            break
        started, child = starts[used]
        used += 1
        if child is None:
            later = sorted((at, p) for p, at in first_wait.items() if p not in matched and at > started)
            if not later:
                continue
            child = later[0][1]
            released += 1
        matched.add(child)
        if child in first_wait:
            total.append((first_wait[child] - left) * 1000)
            to_fork.append((started - left) * 1000)
            to_wait.append((first_wait[child] - started) * 1000)
            if pid in reaped:
                to_reap.append((reaped[pid] - exited) * 1000)
    if not total:
        return None
    return {"method": "perf tracepoints: worker leaving ('leaving PID' to its host, or its exit_group) -> the host's fork -> the new worker's first epoll_wait",
            "count": len(total), "median_ms": statistics.median(total), "p90_ms": fcgi.percentile(total, 0.9),
            "max_ms": max(total), "exit_to_reaped_median_ms": statistics.median(to_reap) if to_reap else None,
            "standby_releases": released,
            "fork_syscall_median_ms": statistics.median(clones) if clones else None,
            "exit_to_fork_median_ms": statistics.median(to_fork), "fork_to_wait_median_ms": statistics.median(to_wait)}

def replacement_split(r):
    if "exit_to_fork_median_ms" not in r:
        return ""
    reaped = f"exit_group to reaped (the host's wait4) {r['exit_to_reaped_median_ms']:.3f} ms, " if r.get("exit_to_reaped_median_ms") is not None else ""
    clone = f" (the host's fork() itself {r['fork_syscall_median_ms']:.3f} ms)" if r.get("fork_syscall_median_ms") is not None else ""
    start = "fork"
    if r.get("standby_releases"):
        start = "release" if r["standby_releases"] == r["count"] else f"fork or release ({r['standby_releases']} of {r['count']} standbys)"
    return f"; {reaped}leaving to {start} {r['exit_to_fork_median_ms']:.3f} ms, {start.split(' (')[0]} to waiting {r['fork_to_wait_median_ms']:.3f} ms{clone}"

def replacement_under_load(server, args):
    """max_requests = 100 under load: workers retire every few milliseconds."""
    case = Case("replace", "", "/hello", connections=2, expect=HELLO)
    found = traced_replacements(server, lambda: loadgen(server, case, args.replace_seconds, 0))
    if found:
        return found
    ready = [float(m) for m in re.findall(r"ready ([\d.]+) ms after fork", server.log())]
    return {"method": "the host's log: fork -> ready (no perf: exit -> fork not seen)", "count": len(ready),
            "median_ms": statistics.median(ready) if ready else None, "max_ms": max(ready) if ready else None}

def replacement_one_at_a_time(server, count):
    """An idle worker TERMed, then the next once its replacement is up: nothing else runs."""
    def drive():
        for _ in range(count):
            before = set(server.workers_pids())
            os.kill(sorted(before)[0], signal.SIGTERM)
            deadline = time.time() + 5
            while time.time() < deadline:
                now = set(server.workers_pids())
                if len(now) >= server.workers and now != before and sorted(before)[0] not in now:
                    break
                time.sleep(0.005)
            time.sleep(0.1)
    return traced_replacements(server, drive)

def recycling(directory, build, args):
    """Hello alone, 2 workers: max_requests = 100 against 0, and 100 with a standby worker,
    interleaved; then the replacement time, without and with the standby."""
    recycled = "max_requests = 100\nmax_requests_jitter = 0"
    servers = {"max_requests=0": Forklift(directory, 2, build, plugins=("hello",), pool_extra="max_requests = 0", tag="-mr0"),
               "max_requests=100": Forklift(directory, 2, build, plugins=("hello",), pool_extra=recycled, log_level="debug", tag="-mr100"),
               "max_requests=100 standby_workers=1": Forklift(directory, 2, build, plugins=("hello",), pool_extra=recycled, log_level="debug",
                                                             tag="-mr100s", standby=1)}
    standby = None
    try:
        case = Case("recycle", "", "/hello", connections=2, expect=HELLO)
        runs = rounds(servers, case, args, lambda name: loadgen(servers[name], case, args.seconds, args.warmup))
        result = {name: summary(r) for name, r in runs.items()}
        replacement = {"under_load": replacement_under_load(servers["max_requests=100"], args),
                       "under_load_standby": replacement_under_load(servers["max_requests=100 standby_workers=1"], args)}
        stop_servers({k: servers.pop(k) for k in ("max_requests=100", "max_requests=100 standby_workers=1")})
        time.sleep(1)
        memory = private_dirty(servers["max_requests=0"])
        memory["pss_kib"] = statistics.median(fcgi.smaps(p).get("Pss", 0) for p in servers["max_requests=0"].workers_pids())
        replacement["one_at_a_time"] = replacement_one_at_a_time(servers["max_requests=0"], args.replacements)
        standby = Forklift(directory, 2, build, plugins=("hello",), pool_extra="max_requests = 0", tag="-mr0s", standby=1)
        time.sleep(0.5)
        replacement["one_at_a_time_standby"] = replacement_one_at_a_time(standby, args.replacements)
        return result, replacement, memory
    finally:
        stop_servers(servers)
        if standby:
            stop_servers({"standby": standby})

# ---------- output ----------

def sleep_overshoot(count=100):
    """How long a 5 ms sleep takes here (the 5 ms case's handlers all usleep(5000))."""
    taken = []
    for _ in range(count):
        start = time.perf_counter()
        time.sleep(0.005)
        taken.append((time.perf_counter() - start) * 1000)
    return statistics.median(taken)

def machine():
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        memory = int(f.readline().split()[1]) // 1024 // 1024
    first = lambda text: text.strip().splitlines()[0] if text.strip() else "?"
    package = lambda p: output(["dpkg-query", "-W", "-f=${Version}", p]).strip() or "?"
    return {"cores": os.cpu_count(), "cpu": cpu, "memory_gib": memory, "kernel": platform.release(),
            "os": first(output(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"])),
            "swift": first(output(["swift", "--version"]) or "?"), "php-fpm": first(output(["php-fpm8.2", "-v"])),
            "nginx": first(subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr) if shutil.which("nginx") else "?",
            "perl": package("perl"), "libfcgi": package("libfcgi-bin") if installed("libfcgi-bin") else package("libfcgi0ldbl"),
            "fcgi-perl": package("libfcgi-perl"), "fcgi-procmanager": package("libfcgi-procmanager-perl"),
            "spawn-fcgi": package("spawn-fcgi"), "wrk": package("wrk"), "cc": first(output(["cc", "--version"])),
            "commit": output(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]).strip(),
            "loadavg_start": open("/proc/loadavg").read().split()[:3], "sleep_5ms_takes_ms": round(sleep_overshoot(), 3)}

def goals(report):
    """The issue's goals, as measured: (goal, figure, met)."""
    cases, rows = report["cases"], []
    def ratio(case, peer, key="rps"):
        s = cases.get(case, {}).get("servers", {})
        if s.get("forklift") and s.get(peer) and s[peer][key]:
            return s["forklift"][key] / s[peer][key]
        return None
    def row(goal, value, met, text=None):
        rows.append({"goal": goal, "measured": text if text is not None else (f"{value:.3f}x" if value is not None else "not measured"),
                     "met": None if value is None else bool(met)})
    r = ratio("hello_new", "c"); row("new connection per request >= 1.10x C", r, r is not None and r >= 1.10)
    r = ratio("hello_keep", "c"); row("kept connection >= 1.0x C", r, r is not None and r >= 1.0)
    r = ratio("hello_keep", "php"); row("kept connection >= 1.8x php-fpm", r, r is not None and r >= 1.8)
    r = ratio("nginx", "c"); row("through nginx >= 1.0x C", r, r is not None and r >= 1.0)
    r = ratio("nginx", "php"); row("through nginx >= 1.3x php-fpm", r, r is not None and r >= 1.3)
    worst, worst_case = None, None
    for key, case in cases.items():
        s = case["servers"]
        if s.get("forklift") and s.get("c") and s["c"]["p99_ms"]:
            value = s["forklift"]["p99_ms"] / s["c"]["p99_ms"]
            if worst is None or value > worst:
                worst, worst_case = value, key
    row("p99 <= 1.1x C in every case", worst, worst is not None and worst <= 1.1,
        f"worst {worst:.3f}x ({worst_case})" if worst is not None else None)
    five = cases.get("sleep5", {}).get("servers", {}).get("forklift")
    if five:
        target = cases["sleep5"]["workers"] / 0.005
        c = cases["sleep5"]["servers"].get("c")
        ceiling = cases["sleep5"]["workers"] / report["machine"]["sleep_5ms_takes_ms"] * 1000
        row("5 ms handler within 5% of workers / 5 ms", five["rps"] / target, five["rps"] >= 0.95 * target,
            f"{five['rps']:.0f}/s of {target:.0f}/s = {five['rps'] / target:.3f}" + (f" (C {c['rps'] / target:.3f})" if c else "")
            + f"; {five['rps'] / ceiling:.3f} of this machine's {ceiling:.0f}/s")
    else:
        row("5 ms handler within 5% of workers / 5 ms", None, False)
    memory = report.get("memory_hello")
    if memory and memory.get("median_kib") is not None:
        row("Private_Dirty per idle worker < 1 MiB (Hello)", memory["median_kib"], memory["max_kib"] < 1024,
            f"median {memory['median_kib'] / 1024:.2f} MiB, max {memory['max_kib'] / 1024:.2f} MiB")
    for how, r in (report.get("replacement") or {}).items():
        if r and r.get("median_ms") is not None:
            row(f"worker replacement < 2 ms median (Hello, {how.replace('_', ' ')})", r["median_ms"], r["median_ms"] < 2,
                f"median {r['median_ms']:.2f} ms over {r['count']}")
    idle = report.get("idle", {}).get("forklift")
    if idle:
        percent = sum(e["percent"] for role, e in idle.items() if role in ("master", "host"))
        row("master and hosts < 0.1% CPU idle", percent, percent < 0.1, f"{percent:.3f}% over {report['idle_seconds']} s")
    return rows

def markdown(report):
    m = report["machine"]
    lines = [f"Run of {report['date']} ({'quick' if report['quick'] else 'full'}): {report['rounds']} interleaved rounds of "
             f"{report['seconds']} s per case and server, the load generator on {report.get('client_threads', 1)} threads, Forklift's process_scheduling {report.get('forklift_scheduling', 'normal')}; medians, (min-max) of the rounds, Forklift's ratio to each peer.",
             f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, Linux {m['kernel']}, {m['os']}; commit {m['commit']}.", ""]
    if report["skipped"]:
        lines += ["Skipped: " + "; ".join(f"{k}: {v}" for k, v in report["skipped"].items()), ""]
    lines += ["| case | server | req/s (min-max) | Forklift ratio | p50 ms | p99 ms | max ms | errors |", "|---|---|---|---|---|---|---|---|"]
    for key, case in report["cases"].items():
        base = case["servers"].get("forklift")
        for name, s in case["servers"].items():
            if not s:
                continue
            ratio = "" if name == "forklift" or not base or not s["rps"] else f"{base['rps'] / s['rps']:.2f}x"
            fair = f" (Jain {s['jain']:.3f}, clients max/min {s['clients_max_over_min']:.2f})" if s.get("jain") else ""
            lines.append(f"| {case['title']} | {NAMES[name]} | {s['rps']:.0f} ({s['rps_min']:.0f}-{s['rps_max']:.0f}) | {ratio} | "
                         f"{s['p50_ms']:.3f} | {s['p99_ms']:.3f} | {s['max_ms']:.1f} | {s['errors']}{fair} |")
    if report.get("sweep"):
        names = [n for n in NAMES if any(v.get(n) for v in report["sweep"].values())]
        lines += ["", f"Hello, new connection per request, {report['workers']} workers, against concurrency: req/s and p99 ms (peers.png):", "",
                  "| clients | " + " | ".join(NAMES[n] for n in names) + " |", "|---" * (len(names) + 1) + "|"]
        for c, row in report["sweep"].items():
            lines.append(f"| {c} | " + " | ".join(f"{row[n]['rps']:.0f} / {row[n]['p99_ms']:.2f}" if row.get(n) else "-" for n in names) + " |")
    if "sleep5" in report["cases"]:
        w = report["cases"]["sleep5"]["workers"]
        lines += ["", f"5 ms case: {w} workers / 5 ms = {w / 0.005:.0f}/s; a 5 ms sleep takes {m['sleep_5ms_takes_ms']:.3f} ms on this machine "
                  f"(median of 100), so {w / m['sleep_5ms_takes_ms'] * 1000:.0f}/s is the most any server can do here."]
    if report.get("recycling"):
        lines += ["", "Recycling (Forklift, Hello, 2 workers, new connection per request, 2 clients):", "",
                  "| pool | req/s (min-max) | p99 ms | errors |", "|---|---|---|---|"]
        for name, s in report["recycling"].items():
            lines.append(f"| {name.replace('=', ' = ').replace(' standby', ', standby')} | {s['rps']:.0f} ({s['rps_min']:.0f}-{s['rps_max']:.0f}) | {s['p99_ms']:.3f} | {s['errors']} |")
        for how, r in report["replacement"].items():
            if r and r.get("median_ms") is not None:
                lines += ["", f"Worker replacement, {how.replace('_', ' ')} ({r['method']}): median {r['median_ms']:.3f} ms, "
                          f"max {r['max_ms']:.3f} ms over {r['count']}"
                          + replacement_split(r) + " (medians)."]
    if report.get("idle"):
        lines += ["", f"Idle, {report['idle_seconds']} s with no request (CPU time from /proc/PID/schedstat; /proc/PID/stat's utime+stime in brackets; "
                  "wakeups are context switches):", "", "| server | processes | CPU % of one core | wakeups/s | Private_Dirty per worker |", "|---|---|---|---|---|"]
        for name, roles in report["idle"].items():
            memory = report["memory"].get(name, {})
            for role, e in sorted(roles.items()):
                mem = f"{memory['median_kib'] / 1024:.2f} MiB (max {memory['max_kib'] / 1024:.2f})" if role == "worker" and memory.get("median_kib") is not None else ""
                lines.append(f"| {NAMES[name]} | {e['processes']} {role} | {e['percent']:.4f} ({e['stat_percent']:.3f}) | {e['wakeups_per_s']:.2f} | {mem} |")
        mh = report.get("memory_hello")
        if mh and mh.get("median_kib") is not None:
            lines += ["", f"Private_Dirty per idle worker, Forklift with Hello alone (after the recycling rounds): median "
                      f"{mh['median_kib'] / 1024:.2f} MiB, max {mh['max_kib'] / 1024:.2f} MiB; Pss {mh['pss_kib'] / 1024:.2f} MiB."]
    lines += ["", "Goals (issue 11), as measured in this run:", "", "| goal | measured | met |", "|---|---|---|"]
    for g in report["goals"]:
        lines.append(f"| {g['goal']} | {g['measured']} | {'yes' if g['met'] else ('no' if g['met'] is False else '-')} |")
    return "\n".join(lines) + "\n"

def chart(report, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        say("no chart: matplotlib is not installed")
        return False
    sweep = report.get("sweep", {})
    if not sweep:
        return False
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in NAMES:
        points = [(int(c), s[name]) for c, s in sweep.items() if s.get(name)]
        if not points:
            continue
        points.sort()
        xs = [c for c, _ in points]
        left.plot(xs, [s["rps"] / 1000 for _, s in points], marker="o", label=NAMES[name])
        right.plot(xs, [s["p99_ms"] for _, s in points], marker="o", label=NAMES[name])
    concurrencies = sorted(int(c) for c in sweep)
    for axis, label in ((left, "throughput, k requests/s"), (right, "p99 latency, ms")):
        axis.set_xscale("log", base=2)
        axis.set_xticks(concurrencies, [str(c) for c in concurrencies])
        axis.set_xlabel("concurrent clients (new connection per request)")
        axis.set_ylabel(label)
        axis.grid(True, alpha=0.3)
    right.set_yscale("log")
    left.legend(fontsize=8)
    figure.suptitle(f"hello world, {report['workers']} workers, unix socket; {report['machine']['cores']} cores, medians of {report['rounds']} rounds")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return True

# ---------- main ----------

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds in all: 1 round of 0.3 s, 2 s idle, no sweep")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0, help="per case, server and round")
    parser.add_argument("--warmup", type=float, default=0.2, help="before each measurement, not counted")
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--replace-seconds", type=float, default=3.0, help="load while worker replacements are traced")
    parser.add_argument("--replacements", type=int, default=40, help="idle workers stopped one at a time, each replacement traced")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--client-threads", type=int, default=os.cpu_count() or 1,
                        help="the load generator's threads (it uses one core at most per thread; never more than a case's connections); default one per core")
    parser.add_argument("--forklift-scheduling", choices=["batch-when-idle", "normal", "batch"], default="batch-when-idle",
                        help="Forklift's process_scheduling: batch-when-idle (the default: its workers wait for connections under SCHED_BATCH), normal, or batch (always)")
    parser.add_argument("--servers", default="forklift,c,php,perl")
    parser.add_argument("--sweep", default="1,2,4,8,16,32,64", help="concurrencies for the chart ('' for none)")
    parser.add_argument("--build", default=os.path.join(ROOT, ".build/release"))
    parser.add_argument("--results", default=None)
    parser.add_argument("--no-install", action="store_true")
    parser.add_argument("--no-build", action="store_true", help="use the existing release build")
    parser.add_argument("--no-nginx", action="store_true")
    args = parser.parse_args()
    # Started with signals blocked (a test runner's thread), every server and perf would
    # inherit the mask and ignore the TERM, QUIT or INT that stops it.
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    global CLIENT_THREADS, FORKLIFT_SCHEDULING
    CLIENT_THREADS = args.client_threads
    FORKLIFT_SCHEDULING = args.forklift_scheduling
    if args.quick:
        args.rounds, args.seconds, args.warmup, args.idle_seconds, args.replace_seconds, args.sweep = 1, 0.3, 0.05, 2, 0.5, ""
        args.replacements = 5
    results_dir = args.results or (os.path.join(BENCH, "results-quick") if args.quick else os.path.join(ROOT, "benchmarks/results"))
    names = [n for n in args.servers.split(",") if n]
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        raise SystemExit(f"unknown server {', '.join(unknown)}: the servers are {', '.join(NAMES)}")
    skipped = prepare(args, names)
    for name in list(names):
        if name in skipped:
            say(f"skipping {NAMES[name]}: {skipped[name]}")
            names.remove(name)
    use_nginx = not args.no_nginx and "nginx" not in skipped and "wrk" not in skipped
    if not args.no_nginx and not use_nginx:
        say(f"skipping the nginx case: {skipped.get('nginx') or skipped.get('wrk')}")
    directory = tempfile.mkdtemp(prefix="forklift-peers-")
    os.chmod(directory, 0o755)  # nginx's workers (nobody) reach the sockets in it (each server's is 0666)
    report = {"date": time.strftime("%Y-%m-%d %H:%M"), "quick": args.quick, "rounds": args.rounds, "seconds": args.seconds,
              "workers": args.workers, "client_threads": CLIENT_THREADS, "forklift_scheduling": FORKLIFT_SCHEDULING, "idle_seconds": args.idle_seconds, "machine": machine(), "skipped": skipped, "cases": {}}
    w = args.workers
    started = time.time()
    try:
        say(f"\n== {w} workers each: {', '.join(NAMES[n] for n in names)}  (temporary folder {directory})")
        servers = start_servers(names, directory, w, args.build)
        nginx = None
        try:
            cases = [Case("hello_new", f"hello, new connection per request, {w} clients", "/hello", connections=w, expect=HELLO, workers=w),
                     Case("hello_keep", f"hello, kept connection, {w} clients", "/hello", connections=w, keep=True, expect=HELLO, workers=w),
                     Case("big64k", f"64 KiB response, {w} clients", "/behaviors/sleep", query="ms=0", connections=w, expect="slept ", min_length=65536, workers=w),
                     Case("echo1m", f"1 MiB POST echoed, {w} clients", "/echo/bench", body=1 << 20, connections=w,
                          expect="body-length: 1048576", min_length=1 << 20, workers=w),
                     # The same work at the same offered load for every server (about half of what
                     # the slowest peer does closed loop): latency at equal load, where the closed
                     # loop above compares tails at different throughputs on the same two cores.
                     Case("hello_rate", "hello at 12,000/s offered, new connection per request, up to 16 clients", "/hello",
                          connections=16, rate=12000, expect=HELLO, workers=w),
                     Case("big64k_rate", "64 KiB response at 3,000/s offered, up to 16 clients", "/behaviors/sleep", query="ms=0",
                          connections=16, rate=3000, expect="slept ", min_length=65536, workers=w),
                     Case("echo1m_rate", "1 MiB POST echoed at 400/s offered, up to 16 clients", "/echo/bench", body=1 << 20,
                          connections=16, rate=400, expect="body-length: 1048576", min_length=1 << 20, workers=w)]
            if use_nginx:
                nginx = Nginx(directory, servers)
                cases.append(Case("nginx", "hello through nginx + wrk, 8 connections", "/hello", connections=8, http=True, workers=w))
            measure_cases(servers, cases, args, report["cases"], nginx)
            if args.sweep:
                report["sweep"] = {}
                say("\n  hello, new connection per request, against concurrency (for the chart)")
                for c in [int(x) for x in args.sweep.split(",")]:
                    case = Case(f"sweep{c}", f"hello c={c}", "/hello", connections=c, expect=HELLO, workers=w)
                    runs = rounds(servers, case, args, lambda name: loadgen(servers[name], case, args.seconds, args.warmup))
                    report["sweep"][str(c)] = {name: summary(r) for name, r in runs.items()}
                    print_case(f"concurrency {c}", report["sweep"][str(c)])
            if nginx:
                nginx.stop()
                nginx = None
            say(f"\n  idle: {args.idle_seconds:.0f} s with no request")
            time.sleep(1)
            report["idle"] = idle_cost(servers, args.idle_seconds)
            report["memory"] = {name: private_dirty(s) for name, s in servers.items()}
            for name, roles in report["idle"].items():
                say(f"    {NAMES[name]:26} " + ", ".join(f"{e['processes']} {role} {e['percent']:.4f}% ({e['wakeups_per_s']:.1f} wakeups/s)" for role, e in sorted(roles.items()))
                    + (f"; Private_Dirty per worker {report['memory'][name]['median_kib'] / 1024:.2f} MiB" if report["memory"][name]["median_kib"] is not None else ""))
        finally:
            if nginx:
                nginx.stop()
            stop_servers(servers)

        w4 = max(4, w)
        say(f"\n== {w4} workers each")
        servers = start_servers(names, directory, w4, args.build)
        try:
            cases = [Case("sleep5", f"5 ms handler, {w4} workers, {2 * w4} clients", "/behaviors/sleep", query="ms=5", connections=2 * w4,
                          expect="slept ", min_length=65536, workers=w4),
                     Case("c64", f"hello, 64 clients on {w4} workers (new connection per request)", "/hello", connections=64, expect=HELLO, workers=w4),
                     Case("c64_rate", f"hello at 16,000/s offered on {w4} workers, up to 64 clients (new connection per request)", "/hello",
                          connections=64, rate=16000, expect=HELLO, workers=w4)]
            measure_cases(servers, cases, args, report["cases"])
            five = report["cases"]["sleep5"]["servers"]
            say(f"    against workers / 5 ms = {w4 / 0.005:.0f}/s: " + ", ".join(f"{NAMES[n]} {s['rps'] / (w4 / 0.005):.3f}" for n, s in five.items() if s))
        finally:
            stop_servers(servers)

        if "forklift" in names:
            say("\n== Forklift alone, Hello, 2 workers: recycling and worker replacement")
            result, replacement, memory = recycling(directory, args.build, args)
            report["recycling"], report["replacement"], report["memory_hello"] = result, replacement, memory
            for name, s in result.items():
                say(f"    {name:18} {s['rps']:9.0f}/s ({s['rps_min']:.0f}-{s['rps_max']:.0f})  p99 {s['p99_ms']:.3f} ms  errors {s['errors']}")
            if result.get("max_requests=0") and result.get("max_requests=100"):
                say(f"    max_requests = 100 keeps {result['max_requests=100']['rps'] / result['max_requests=0']['rps']:.3f} of the throughput")
            if result.get("max_requests=0") and result.get("max_requests=100 standby_workers=1"):
                say(f"    with a standby worker {result['max_requests=100 standby_workers=1']['rps'] / result['max_requests=0']['rps']:.3f}")
            for how, r in replacement.items():
                if r and r.get("median_ms") is not None:
                    split = replacement_split(r)
                    say(f"    worker replacement, {how.replace('_', ' ')}: median {r['median_ms']:.3f} ms, max {r['max_ms']:.3f} ms over {r['count']}{split}")
                else:
                    say(f"    worker replacement, {how.replace('_', ' ')}: not measured (perf unavailable?)")
            if memory.get("median_kib") is not None:
                say(f"    Private_Dirty per idle worker: median {memory['median_kib'] / 1024:.2f} MiB, max {memory['max_kib'] / 1024:.2f} MiB")
    finally:
        shutil.rmtree(directory, ignore_errors=True)

    report["machine"]["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    report["elapsed_s"] = round(time.time() - started)
    report["goals"] = goals(report)
    say("\n== goals (issue 11), as measured in this run")
    for g in report["goals"]:
        say(f"    {g['goal']:66} {g['measured']:44} {'met' if g['met'] else ('NOT met' if g['met'] is False else '-')}")
    os.makedirs(results_dir, exist_ok=True)
    with open(os.path.join(results_dir, "peers.json"), "w") as f:
        json.dump(report, f, indent=1)
    with open(os.path.join(results_dir, "peers.md"), "w") as f:
        f.write(markdown(report))
    drawn = chart(report, os.path.join(results_dir, "peers.png"))
    say(f"\nresults: {results_dir}/peers.md, peers.json{', peers.png' if drawn else ''} ({report['elapsed_s']} s)")

if __name__ == "__main__":
    main()
