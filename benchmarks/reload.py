#!/usr/bin/env python3
"""Reload benchmark: what a HUP costs while Forklift is under load.

For a Hello-sized plugin and for one that preloads 512 MiB (the Ballast fixture), it prints:
  - time from HUP to the first response served by the new generation, and how much of it
    was the plugins' loading and preload (the host's load_ms) and how much the rest;
  - p50/p99 latency in steady state and during reloads (HUP until the old generation has drained);
  - total Pss of all forklift processes in steady state and at the peak of the overlap, sampled
    in one extra reload that the latency figures leave out (reading smaps costs CPU).

Goals (issue 3): new code serving within 50 ms of HUP plus the plugin's own preload time;
p99 during reloads no worse than 2x steady state. With the preload as keyed data, which a
code-only reload inherits (issue 13): new code serving within 50 ms of HUP, peak Pss during
the overlap at most 1.05x steady state, p99 during reloads at most 1.2x steady state.

A reload's new generation loads at idle CPU priority after its first 50 ms (background_loading,
default 30 s): --compare runs the preload case with background_loading = 0 as well.

Usage: benchmarks/reload.py [--build .build/release] [--reloads N] [--clients 4] [--workers 4] [--compare]
Build first: swift build -c release
"""
import argparse, os, re, signal, sys, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fcgi
from fcgi import request as fcgi_request, title, descendants, percentile

PARAMS = [(b"REQUEST_METHOD", b"GET"), (b"SCRIPT_NAME", b"/b"), (b"REQUEST_URI", b"/b")]

def pss_kib(pids):
    """Memory of all these processes: their Pss without shared memory (shmem), plus each
    keyed data memfd once, by its resident size. A memfd's pages count in Pss only where a
    process has touched them, and not at all while only the master holds its descriptor, so
    Pss alone would miss the data."""
    total, memfds = 0, {}
    for pid in pids:
        rollup = fcgi.smaps(pid)
        total += rollup.get("Pss", 0) - rollup.get("Pss_Shmem", 0)
        for folder in (f"/proc/{pid}/fd", f"/proc/{pid}/map_files"):
            try:
                names = os.listdir(folder)
            except OSError:
                continue
            for name in names:
                try:
                    if "memfd:forklift-data" in os.readlink(f"{folder}/{name}"):
                        info = os.stat(f"{folder}/{name}")
                        memfds[info.st_ino] = info.st_blocks * 512 // 1024
                except OSError:
                    pass
    return total + sum(memfds.values())

def client(sock, stop, results):
    """One load client, in its own process: a Python thread beside the measuring loop would
    wait for the GIL and add the monitor's work to the latencies it measures."""
    outcomes, errors = [], 0
    while not stop.is_set():
        sent = time.monotonic()
        try:
            out = fcgi_request(sock, PARAMS)
            received = time.monotonic()
            host = int(re.search(rb"host (\d+)", out).group(1))
            outcomes.append((sent, received, host))
        except Exception:
            errors += 1
    results.put((outcomes, errors))

class Load:
    """Clients sending back to back, each in its own process. Each response is recorded as
    (sent, received, host pid); the host pid tells its generation (from the master's log)."""
    def __init__(self, sock, clients):
        import multiprocessing
        self.stop_event = multiprocessing.Event()
        self.queue = multiprocessing.Queue()
        self.processes = [multiprocessing.Process(target=client, args=(sock, self.stop_event, self.queue)) for _ in range(clients)]
        for process in self.processes:
            process.start()

    def stop(self):
        self.stop_event.set()
        results, errors = [], 0
        for _ in self.processes:
            outcomes, failed = self.queue.get()
            results += outcomes
            errors += failed
        for process in self.processes:
            process.join()
        return results, errors

def host_generations(log):
    return {int(pid): int(gen) for pid, gen in re.findall(r"started host pid (\d+) for pool www gen (\d+)", log)}

def scenario(name, build, preload_mb, reloads, clients, workers, background_loading="30s", keyed=False):
    server = fcgi.Server(build, f"""max_children = {workers}
[pool.www.plugin.b]
path = "{os.path.abspath(build)}/libForkliftBenchBallast.so"
route = "/"
settings = {{ preload_mb = {preload_mb}, keyed = {"true" if keyed else "false"} }}""", global_extra=f'log_level = "info"\ndie_timeout = "10s"\nreload_timeout = "120s"\nbackground_loading = "{background_loading}"')
    master, sock, directory = server.master, server.sock, server.directory
    try:
        load = Load(sock, clients)
        time.sleep(1.0)

        def observe(old_generation=None):
            """One look at the process family, as the reload loop takes every 20 ms: the
            steady window is watched the same way, so that both windows carry the monitor's
            own CPU (a scan of /proc) and the ratio compares like with like."""
            family = [master.pid] + descendants(master.pid)
            return family, [title(p) for p in family]

        steady_from = time.monotonic()
        while time.monotonic() - steady_from < 3.0:
            observe()
            time.sleep(0.02)
        steady_to = time.monotonic()
        steady_pss = pss_kib([master.pid] + descendants(master.pid))

        def reload(old_generation, sample_memory):
            """HUP, then wait until the old generation is gone (the new one is live by then).
            Reading smaps walks every page table of a 512 MiB process and costs CPU the
            server needs, so memory is only sampled in a round kept out of the latency figures."""
            hup, peak = time.monotonic(), 0
            os.kill(master.pid, signal.SIGHUP)
            while True:
                family, titles = observe()
                if sample_memory:
                    peak = max(peak, pss_kib(family))
                if not any(f"gen={old_generation}" in t for t in titles) and any(f"gen={old_generation + 1}" in t for t in titles):
                    return hup, peak
                if time.monotonic() - hup > 120:
                    raise SystemExit(f"{name}: reload to generation {old_generation + 1} did not complete")
                time.sleep(0.02)

        reload_windows, hups = [], []
        for round in range(reloads):
            hup, _ = reload(round + 1, sample_memory=False)
            hups.append(hup)
            reload_windows.append((hup, time.monotonic() + 0.1))
            time.sleep(1.0)
        _, peak_pss = reload(reloads + 1, sample_memory=True)
        time.sleep(0.5)
        results, errors = load.stop()
        generation_of = host_generations(server.log())
        results = [(sent, received, generation_of.get(host, -1)) for sent, received, host in results]

        # Per reload: the first response from the new generation, sent after the HUP.
        first_response_ms, loading_windows, switch_windows = [], [], []
        for index, (hup, (start, end)) in enumerate(zip(hups, reload_windows)):
            news = [r[1] for r in results if r[0] >= hup and r[2] > index + 1]
            first = min(news) if news else end
            first_response_ms.append((first - hup) * 1000)
            loading_windows.append((hup, first))
            switch_windows.append((first, end))

        def latencies(windows):
            return [(r[1] - r[0]) * 1000 for r in results if any(a <= r[0] <= b for a, b in windows)]
        steady = latencies([(steady_from, steady_to)])
        during = latencies(reload_windows)
        print(f"\n== {name}: {workers} workers, {clients} clients, {reloads} reloads, background_loading = {background_loading}")
        print(f"requests: {len(results)} answered, {errors} failed")
        print(f"HUP -> first response from the new generation: "
              f"median {percentile(first_response_ms, 0.5):.1f} ms, max {max(first_response_ms):.1f} ms")
        # The host's own figure for loading the plugins and running their preload hooks; the
        # rest is Forklift's: starting the host, forking the workers, worker init, the switch.
        load_ms = {int(gen): float(ms) for gen, ms in re.findall(r"pool www gen (\d+): .*?load_ms=([\d.]+)", server.log())}
        rest_ms = [first - load_ms[index + 2] for index, first in enumerate(first_response_ms) if index + 2 in load_ms]
        loads = [load_ms[index + 2] for index in range(reloads) if index + 2 in load_ms]
        print(f"  of which loading the plugins (preload included): median {percentile(loads, 0.5):.1f} ms, max {max(loads):.1f} ms;"
              f" the rest (host start, forks, worker init, switch): median {percentile(rest_ms, 0.5):.1f} ms, max {max(rest_ms):.1f} ms")
        print(f"latency steady:  p50 {percentile(steady, 0.5):.2f} ms  p99 {percentile(steady, 0.99):.2f} ms  ({len(steady)} requests)")
        print(f"latency reloads: p50 {percentile(during, 0.5):.2f} ms  p99 {percentile(during, 0.99):.2f} ms  ({len(during)} requests)"
              f"  -> p99 ratio {percentile(during, 0.99) / percentile(steady, 0.99):.2f}x (goal <= 2x)")
        server_ms = [int(m) for m in re.findall(r"reloaded in (\d+) ms", server.log())]
        loading, switching = latencies(loading_windows), latencies(switch_windows)
        print(f"  of which while the new generation loads: p99 {percentile(loading, 0.99):.2f} ms ({len(loading)} requests);"
              f" while the old one drains: p99 {percentile(switching, 0.99):.2f} ms ({len(switching)} requests)")
        print(f"server side, HUP to new generation live (master log): median {percentile(server_ms, 0.5)} ms, max {max(server_ms)} ms")
        print(f"memory (Pss of all forklift processes, keyed data memfds counted once): steady {steady_pss / 1024:.0f} MiB, "
              f"peak during overlap {peak_pss / 1024:.0f} MiB ({peak_pss / steady_pss:.2f}x)")
        if keyed:
            # Issue 13's goals for a code-only reload that inherits its data.
            p99_ratio = percentile(during, 0.99) / percentile(steady, 0.99)
            median_first = percentile(first_response_ms, 0.5)
            print(f"goals (keyed data): new code serving <= 50 ms after HUP: median {median_first:.1f} ms "
                  f"{'met' if median_first <= 50 else 'NOT met'}; peak Pss <= 1.05x steady: {peak_pss / steady_pss:.2f}x "
                  f"{'met' if peak_pss <= 1.05 * steady_pss else 'NOT met'}; p99 during reloads <= 1.2x steady: {p99_ratio:.2f}x "
                  f"{'met' if p99_ratio <= 1.2 else 'NOT met'}")
            built = len(re.findall(r"ballast-\d+ built", server.log()))
            print(f"  the data was built {built} time(s) over {reloads + 2} generations")
    finally:
        server.stop()

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default=".build/release")
    parser.add_argument("--reloads", type=int, default=None,
                        help="reloads per case (default: 20 for Hello, whose reload windows are short, 5 with a preload)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--preload-mb", type=int, default=512)
    parser.add_argument("--only-preload", action="store_true", help="skip the Hello-sized scenario")
    parser.add_argument("--only-hello", action="store_true", help="skip the preload scenarios")
    parser.add_argument("--only-keyed", action="store_true", help="only the preload as keyed data")
    parser.add_argument("--compare", action="store_true",
                        help="run the preload scenario with background_loading = 0 too (loading at normal priority)")
    args = parser.parse_args()
    if args.only_keyed:
        scenario(f"preload {args.preload_mb} MiB as keyed data (code-only reloads inherit it)", args.build, args.preload_mb,
                 args.reloads or 5, args.clients, args.workers, keyed=True)
        return
    if not args.only_preload:
        scenario("hello (no preload)", args.build, 0, args.reloads or 20, args.clients, args.workers)
    if not args.only_hello:
        scenario(f"preload {args.preload_mb} MiB", args.build, args.preload_mb, args.reloads or 5, args.clients, args.workers)
        scenario(f"preload {args.preload_mb} MiB as keyed data (code-only reloads inherit it)", args.build, args.preload_mb,
                 args.reloads or 5, args.clients, args.workers, keyed=True)
        if args.compare:
            scenario(f"preload {args.preload_mb} MiB", args.build, args.preload_mb, args.reloads or 5, args.clients, args.workers,
                     background_loading="0")

if __name__ == "__main__":
    main()
