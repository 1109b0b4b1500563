#!/usr/bin/env python3
"""Where a request's latency goes: in the listen queue, in the worker, or in the client.

Runs one closed-loop case (hello, a new connection per request) against Forklift and the C
libfcgi responder while bpftrace follows every connection through the kernel's syscall
tracepoints, by the socket at each end of it:
  - queue:    the client's connect() returned -> a worker's accept() returned it
  - request:  accept() returned -> the worker's first read that returned some of the request
              (a worker that accepts before the client has sent waits here)
  - handling: that read -> the worker's first write of the response began
  - client:   that write began -> the client's first read of the connection began
and prints, per server, the load generator's own figures and each part's p50, p99 and p99.9
(upper bounds of 25 µs buckets, up to 20 ms) with how many requests spent more than 1 ms in it.
The four add up to about the load generator's latency (its connect, send and last read
aside; the trace also takes in the load generator's 0.1 s of warm-up, which its own figures
leave out). Tracing slows every server by about a fifth; compare the servers, not the figures
with peers.py's.

    python3 benchmarks/latency_split.py [--servers forklift,c] [--connections 64] [--workers 4]
                                        [--seconds 1] [--client-threads N] [--forklift-scheduling normal|batch]

Needs root and bpftrace (installed when missing); run benchmarks/peers.py once first (it builds
.build-bench/ and the release build).
"""
import argparse, os, re, shutil, signal, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peers

# A connection is known by its kernel sockets: the client's (connect) and the worker's (accept),
# each the other's unix peer; a descriptor's socket is found through the task's file table.
PROGRAM = r'''
tracepoint:syscalls:sys_enter_connect /comm == "fcgi-load"/ { @connecting[tid] = args->fd; }
tracepoint:syscalls:sys_exit_connect /comm == "fcgi-load" && @connecting[tid]/ {
  if (args->ret == 0) {
    $file = *(curtask->files->fdt->fd + @connecting[tid]);
    @connected[((struct socket *)$file->private_data)->sk] = nsecs;
  }
  delete(@connecting[tid]);
}
tracepoint:syscalls:sys_exit_accept4, tracepoint:syscalls:sys_exit_accept /args->ret >= 0/ {
  $file = *(curtask->files->fdt->fd + args->ret);
  $sk = ((struct socket *)$file->private_data)->sk;
  $peer = ((struct unix_sock *)$sk)->peer;
  if (@connected[$peer]) { @queue = lhist((nsecs - @connected[$peer]) / 1000, 0, 20000, 25); delete(@connected[$peer]); }
  @accepted[$sk] = nsecs;
}
tracepoint:syscalls:sys_enter_recvfrom, tracepoint:syscalls:sys_enter_read /comm != "fcgi-load"/ { @reading[tid] = args->fd; }
tracepoint:syscalls:sys_exit_recvfrom, tracepoint:syscalls:sys_exit_read /comm != "fcgi-load" && @reading[tid]/ {
  if (args->ret > 0) {
    $file = *(curtask->files->fdt->fd + @reading[tid]);
    $sk = ((struct socket *)$file->private_data)->sk;
    if (@accepted[$sk]) {
      @request = lhist((nsecs - @accepted[$sk]) / 1000, 0, 20000, 25);
      delete(@accepted[$sk]);
      @read[$sk] = nsecs;
    }
  }
  delete(@reading[tid]);
}
tracepoint:syscalls:sys_enter_sendto, tracepoint:syscalls:sys_enter_write /comm != "fcgi-load"/ {
  $file = *(curtask->files->fdt->fd + args->fd);
  $sk = ((struct socket *)$file->private_data)->sk;
  if (@read[$sk]) {
    @handling = lhist((nsecs - @read[$sk]) / 1000, 0, 20000, 25);
    delete(@read[$sk]);
    @answered[((struct unix_sock *)$sk)->peer] = nsecs;
  }
}
tracepoint:syscalls:sys_enter_recvfrom, tracepoint:syscalls:sys_enter_read /comm == "fcgi-load"/ {
  $file = *(curtask->files->fdt->fd + args->fd);
  $sk = ((struct socket *)$file->private_data)->sk;
  if (@answered[$sk]) { @client = lhist((nsecs - @answered[$sk]) / 1000, 0, 20000, 25); delete(@answered[$sk]); }
}
END { clear(@connecting); clear(@connected); clear(@accepted); clear(@reading); clear(@read); clear(@answered); }
'''

PARTS = ("queue", "request", "handling", "client")
UNITS = {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}


def histograms(text):
    """{name: [(upper bound in µs, count, lower bound), ...]} from bpftrace's printed lhist() maps
    (the last bucket, "[20000, ...)", has no upper bound: infinity)."""
    found, current = {}, None
    for line in text.splitlines():
        head = re.match(r"@(\w+):\s*$", line)
        if head:
            current = found.setdefault(head.group(1), [])
            continue
        bucket = re.match(r"\[(\d+)([KMG]?)(?:,\s*(\d+|\.\.\.)([KMG]?))?[\])]\s+(\d+)", line)
        if bucket and current is not None:
            low = int(bucket.group(1)) * UNITS[bucket.group(2)]
            if bucket.group(3) == "...":
                high = float("inf")
            else:
                high = int(bucket.group(3)) * UNITS[bucket.group(4)] if bucket.group(3) else low + 1
            current.append((high, int(bucket.group(5)), low))
    return found


def quantile(buckets, q):
    total = sum(count for _, count, _ in buckets)
    if not total:
        return 0
    seen = 0
    for high, count, _ in buckets:
        seen += count
        if seen >= q * total:
            return high
    return buckets[-1][0]


def over(buckets, microseconds):
    return sum(count for _, count, low in buckets if low >= microseconds)


def microseconds(value):
    if value == float("inf"):
        return "> 20 ms"
    return f"{value / 1000:.2f} ms" if value >= 1000 else f"{value} µs"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default="forklift,c")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--client-threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--forklift-scheduling", choices=["batch-when-idle", "normal", "batch"], default="batch-when-idle", help="Forklift's process_scheduling")
    parser.add_argument("--build", default=os.path.join(peers.ROOT, ".build", "release"))
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("latency_split.py: bpftrace needs root")
    if not shutil.which("bpftrace"):
        peers.run(["apt-get", "install", "-y", "bpftrace"])
    if not os.path.exists(f"{peers.BENCH}/fcgi-load"):
        sys.exit("latency_split.py: run benchmarks/peers.py once first (no .build-bench/fcgi-load)")
    peers.CLIENT_THREADS = args.client_threads
    peers.FORKLIFT_SCHEDULING = args.forklift_scheduling
    directory = tempfile.mkdtemp(prefix="forklift-split-")
    case = peers.Case("split", "", "/hello", connections=args.connections, expect=peers.HELLO, workers=args.workers)
    print(f"hello, new connection per request, {args.connections} clients on {args.workers} workers, "
          f"{args.client_threads} client threads, {args.seconds:g} s traced, Forklift's process_scheduling {args.forklift_scheduling}")
    for name in args.servers.split(","):
        servers = peers.start_servers([name], directory, args.workers, args.build)
        if name not in servers:
            continue
        server = servers[name]
        try:
            output = os.path.join(directory, f"{name}.bpftrace")
            with open(output, "w") as sink:
                tracer = subprocess.Popen(["bpftrace", "-e", PROGRAM], stdout=sink, stderr=subprocess.STDOUT)
            deadline = time.time() + 60
            while "Attaching" not in open(output).read():
                if tracer.poll() is not None or time.time() > deadline:
                    sys.exit(f"latency_split.py: bpftrace did not start:\n{open(output).read()}")
                time.sleep(0.1)
            time.sleep(1.0)  # attached: the probes are live once it prints their count
            try:
                measured = peers.loadgen(server, case, args.seconds, 0.1)
            finally:
                tracer.send_signal(signal.SIGINT)
                tracer.wait(timeout=60)
            found = histograms(open(output).read())
        finally:
            peers.stop_servers(servers)
        latency = measured["latency_ms"]
        print(f"\n  {peers.NAMES[name]}: {measured['rps']:,.0f}/s, latency p50 {latency['p50']:.3f} ms, "
              f"p99 {latency['p99']:.3f} ms, errors {measured['errors']}")
        for part in PARTS:
            buckets = found.get(part, [])
            total = sum(count for _, count, _ in buckets)
            if not total:
                print(f"    {part:8s} nothing traced")
                continue
            print(f"    {part:8s} p50 {microseconds(quantile(buckets, 0.5)):>9s}  p99 {microseconds(quantile(buckets, 0.99)):>9s}"
                  f"  p99.9 {microseconds(quantile(buckets, 0.999)):>9s}  over 1 ms: {over(buckets, 1000) / total:6.2%} of {total:,}")


if __name__ == "__main__":
    main()
