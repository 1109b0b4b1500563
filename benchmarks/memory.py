#!/usr/bin/env python3
"""Memory-sharing benchmark: a big preloaded dictionary served by many workers.

With the Dictionary example plugin preloading --size-mb (default 1024) and --workers (default
8) workers, after --lookups (default 100,000) lookups spread over all workers, it prints each
worker's Private_Dirty, the pool's total Pss, the host's ready time and the worker spawn
latency (fork to ready), and the minor page faults each worker took. The "shared" layout is
keyed shared data (a sealed memfd a reload can inherit), "arena" a private anonymous
SharedArena (built at every reload), "naive" a [String: String], to show why preloaded data
belongs in one of the first two.

Goals (issue 4): total Pss under 1.15 GiB, each worker under 4 MiB private, worker spawn under
3 ms median.

Usage: benchmarks/memory.py [--build .build/release] [--size-mb 1024] [--workers 8] [--lookups 100000]
                            [--layouts shared,arena,naive]
Build first: swift build -c release
"""
import argparse, os, re, signal, sys, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fcgi

def run(layout, args):
    server = fcgi.Server(args.build, f"""max_children = {args.workers}
[pool.www.plugin.dict]
path = "{os.path.abspath(args.build)}/libDictionary.so"
route = "/dict"
settings = {{ size_mb = {args.size_mb}, layout = "{layout}" }}""", global_extra='log_level = "debug"\nreload_timeout = "600s"')
    master, sock, log_path = server.master, server.sock, server.log_path
    try:
        text = open(log_path).read()
        words = int(fcgi.get(sock, "/dict/stats").split(b"\r\n\r\n", 1)[1].split()[1])

        per_client = args.lookups // 4
        failures = []
        def client(seed):
            for i in range(per_client):
                word = f"word-{(i * 7919 + seed * 104729) % words}"
                try:
                    out = fcgi.get(sock, f"/dict/{word}")
                    if b"Status: 200" not in out:
                        failures.append(word)
                except Exception as error:
                    failures.append(str(error))
        def minor_faults(pid):
            # Field 10 of /proc/PID/stat, after the parenthesised command name.
            with open(f"/proc/{pid}/stat") as stat:
                return int(stat.read().rsplit(")", 1)[1].split()[7])
        before_pids = sorted(p for p in fcgi.descendants(master.pid) if fcgi.title(p).startswith("forklift: worker"))
        faults_before = {p: minor_faults(p) for p in before_pids}
        started = time.time()
        threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.time() - started

        pids = fcgi.descendants(master.pid)
        workers = sorted(p for p in pids if fcgi.title(p).startswith("forklift: worker"))
        host = [p for p in pids if fcgi.title(p).startswith("forklift: host")]
        private = [fcgi.smaps(p).get("Private_Dirty", 0) for p in workers]
        faults = [minor_faults(p) - faults_before[p] for p in workers if p in faults_before]
        total_pss = sum(fcgi.smaps(p).get("Pss", 0) for p in workers + host + [master.pid])
        ready_ms = float(re.search(r"ready_ms=([\d.]+)", text).group(1))
        load_ms = float(re.search(r"load_ms=([\d.]+)", text).group(1))
        initial = [float(m) for m in re.findall(r"ready ([\d.]+) ms after fork", text)]

        # One worker at a time, as in steady operation: TERM one, time its replacement.
        respawn = []
        for _ in range(5):
            before = len(re.findall(r"ready ([\d.]+) ms after fork", open(log_path).read()))
            victim = [p for p in fcgi.descendants(master.pid) if fcgi.title(p).startswith("forklift: worker")][0]
            os.kill(victim, signal.SIGTERM)
            while True:
                found = re.findall(r"ready ([\d.]+) ms after fork", open(log_path).read())
                if len(found) > before:
                    respawn.append(float(found[-1]))
                    break
                time.sleep(0.05)
            time.sleep(0.3)

        try:
            shmem_huge = re.search(r"\[(\w+)\]", open("/sys/kernel/mm/transparent_hugepage/shmem_enabled").read()).group(1)
        except (OSError, AttributeError):
            shmem_huge = "unknown"
        print(f"\n== {layout} layout: {args.size_mb} MiB preloaded, {len(workers)} workers, {args.lookups} lookups "
              f"({len(failures)} failed, {args.lookups / elapsed:.0f}/s); shmem huge pages: {shmem_huge}")
        print("Private_Dirty per worker: " + ", ".join(f"{kib / 1024:.1f}" for kib in private) + " MiB"
              f"  (max {max(private) / 1024:.1f} MiB; goal < 4 MiB)")
        if faults:
            print(f"minor page faults per worker during the lookups: median {fcgi.percentile(faults, 0.5):.0f}, max {max(faults)}"
                  f" ({args.lookups // len(workers)} lookups each on average)")
        print(f"total Pss (master, host, workers): {total_pss / 1024 / 1024:.3f} GiB  (goal < 1.15 GiB for 1 GiB)")
        print(f"host: plugins loaded and preloaded in {load_ms / 1000:.2f} s, generation ready in {ready_ms / 1000:.2f} s")
        print(f"worker spawn, fork to ready, one at a time: median {fcgi.percentile(respawn, 0.5):.2f} ms, max {max(respawn):.2f} ms"
              f" (goal < 3 ms median); the first {len(initial)} forked together: median {fcgi.percentile(initial, 0.5):.2f} ms")
    finally:
        server.stop()

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default=".build/release")
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--lookups", type=int, default=100_000)
    parser.add_argument("--layouts", default="shared,arena,naive", help="comma-separated: shared (keyed data), arena, naive")
    parser.add_argument("--skip-naive", action="store_true")
    args = parser.parse_args()
    for layout in args.layouts.split(","):
        if layout != "naive" or not args.skip_naive:
            run(layout, args)

if __name__ == "__main__":
    main()
