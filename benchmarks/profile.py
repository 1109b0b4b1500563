#!/usr/bin/env python3
"""Where a request's time goes: syscalls per request and the hottest symbols of the workers,
for Forklift and (for comparison) the C libfcgi responder, one worker each.

For each server and case (hello with a new connection per request, hello with FCGI_KEEP_CONN,
a 1 MiB POST echoed: --cases new,keep,echo) it runs --requests requests (a tenth of them
for the echo) with fcgi-load and prints:
  - the workers' syscalls per request, counted by perf's syscalls:sys_enter_* tracepoints
    (exact counts; the tracing slows the run, not the counts);
  - CPU time per request of the workers (schedstat) and of the load generator;
  - with --symbols, the top symbols of a perf record (cpu-clock sampling) of the workers.

Usage: python3 benchmarks/profile.py [--requests 20000] [--symbols] [--servers forklift,c] [--cases new,keep,echo]
Run benchmarks/peers.py once first (it installs perf's peers and builds .build-bench/).
"""
import argparse, os, re, shutil, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peers

def cpu_seconds(pids):
    total = 0.0
    for pid in pids:
        sample = peers.cpu_sample(pid)
        if sample:
            total += sample[1]
    return total

CASES = {"new": ("hello, new connection per request", ["--path", "/hello", "--expect-substring", peers.HELLO]),
         "keep": ("hello, kept connection", ["--path", "/hello", "--expect-substring", peers.HELLO, "-k"]),
         "echo": ("1 MiB POST echoed", ["--path", "/echo/x", "--body-size", str(1 << 20), "--expect-substring", "body-length: 1048576"])}

def load(server, case, requests):
    command = [f"{peers.BENCH}/fcgi-load", "--connect", server.sock, "-c", "1", "-n", str(requests), "--quiet"] + CASES[case][1]
    started = time.time()
    result = subprocess.run(command, capture_output=True, text=True)
    return result, time.time() - started

def syscalls(perf, server, case, requests):
    pids = server.workers_pids()
    out = os.path.join(server.dir, "stat.txt")
    recorder = subprocess.Popen([perf, "stat", "-x", ",", "-o", out, "-e", "syscalls:sys_enter_*", "-p", ",".join(map(str, pids))],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    load(server, case, requests)
    recorder.send_signal(2)
    recorder.wait(timeout=60)
    counts = {}
    with open(out) as f:
        for line in f:
            parts = line.strip().split(",")
            if len(parts) >= 3 and parts[0].isdigit() and int(parts[0]) > 0:
                counts[parts[2].replace("syscalls:sys_enter_", "")] = int(parts[0])
    return {name: n / requests for name, n in counts.items() if n / requests >= 0.01}

def symbols(perf, server, case, requests, top=18):
    data = os.path.join(server.dir, "perf.data")
    recorder = subprocess.Popen([perf, "record", "-q", "-F", "4000", "-e", "cpu-clock", "-o", data, "-p", ",".join(map(str, server.workers_pids()))],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    load(server, case, requests)
    recorder.send_signal(2)
    recorder.wait(timeout=60)
    report = subprocess.run([perf, "report", "-i", data, "--stdio", "--no-children", "--sort", "dso,symbol", "--percent-limit", "0.8"],
                            capture_output=True, text=True).stdout
    rows = [line.strip() for line in report.splitlines() if re.match(r"\s*[\d.]+%", line)]
    return rows[:top]

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--servers", default="forklift,c")
    parser.add_argument("--symbols", action="store_true")
    parser.add_argument("--cases", default="new,keep,echo")
    parser.add_argument("--build", default=os.path.join(peers.ROOT, ".build/release"))
    args = parser.parse_args()
    perf = shutil.which("perf")
    if not perf:
        raise SystemExit("perf is not installed (apt-get install linux-perf)")
    directory = tempfile.mkdtemp(prefix="forklift-profile-")
    try:
        for name in args.servers.split(","):
            server = (peers.Forklift(directory, 1, args.build, plugins=("hello", "echo")) if name == "forklift"
                      else peers.CResponder(directory, 1))
            try:
                for case in args.cases.split(","):
                    requests = args.requests // 10 if case == "echo" else args.requests
                    workers = server.workers_pids()
                    before = cpu_seconds(workers)
                    result, elapsed = load(server, case, requests)
                    worker_us = (cpu_seconds(workers) - before) / requests * 1e6
                    print(f"\n== {peers.NAMES[name]}, 1 worker, {CASES[case][0]}: {requests / elapsed:.0f}/s with 1 client;"
                          f" worker CPU {worker_us:.1f} µs per request", flush=True)
                    calls = syscalls(perf, server, case, requests)
                    print(f"   syscalls per request ({sum(calls.values()):.1f}): " +
                          ", ".join(f"{n} {v:.2f}" for n, v in sorted(calls.items(), key=lambda item: -item[1])), flush=True)
                    if args.symbols:
                        print("   hottest symbols (perf, cpu-clock):")
                        for row in symbols(perf, server, case, requests):
                            print(f"     {row}", flush=True)
            finally:
                server.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)

if __name__ == "__main__":
    main()
