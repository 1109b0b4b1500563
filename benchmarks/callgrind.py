#!/usr/bin/env python3
"""Instructions per request in a worker, counted by callgrind (stable on a noisy machine).

Runs forklift (release build, stripped copies) with one worker serving the Hello plugin under
`valgrind --tool=callgrind --trace-children=yes`, sends N requests, stops it, and reads the
worker's total instruction count; twice (--low and --high requests), so that start-up and
shutdown cancel out: per request = (Ir(high) - Ir(low)) / (high - low).

    python3 benchmarks/callgrind.py [--build .build/release] [--mode new|kept|both] [--params cgi-fcgi|nginx]
"""
import argparse, glob, os, shutil, socket, struct, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fcgi


def record(kind, content):
    pad = (8 - len(content) % 8) % 8
    return struct.pack(">BBHHBB", 1, kind, 1, len(content), pad, 0) + content + b"\0" * pad


# The params a request carries: what cgi-fcgi sends, or the 20 of nginx's fastcgi_params for
# a GET from wrk (--params nginx).
PARAMS = "cgi-fcgi"


def params_for(path):
    if PARAMS == "nginx":
        return [(b"QUERY_STRING", b""), (b"REQUEST_METHOD", b"GET"), (b"CONTENT_TYPE", b""), (b"CONTENT_LENGTH", b""),
                (b"SCRIPT_NAME", path), (b"REQUEST_URI", path), (b"DOCUMENT_URI", path), (b"DOCUMENT_ROOT", b"/usr/share/nginx/html"),
                (b"SERVER_PROTOCOL", b"HTTP/1.1"), (b"REQUEST_SCHEME", b"http"), (b"GATEWAY_INTERFACE", b"CGI/1.1"),
                (b"SERVER_SOFTWARE", b"nginx/1.22.1"), (b"REMOTE_ADDR", b"127.0.0.1"), (b"REMOTE_PORT", b"45678"),
                (b"SERVER_ADDR", b"127.0.0.1"), (b"SERVER_PORT", b"8080"), (b"SERVER_NAME", b"localhost"),
                (b"REDIRECT_STATUS", b"200"), (b"HTTP_HOST", b"127.0.0.1:8080"), (b"HTTP_USER_AGENT", b"wrk")]
    return [(b"REQUEST_METHOD", b"GET"), (b"SCRIPT_NAME", path), (b"REQUEST_URI", path), (b"QUERY_STRING", b"")]


def request_bytes(path, keep):
    params = params_for(path)
    body = b"".join(bytes([len(k), len(v)]) + k + v for k, v in params)
    return record(1, struct.pack(">HB5x", 1, 1 if keep else 0)) + record(4, body) + record(4, b"") + record(5, b"")


def read_response(s, buffer):
    """Reads up to END_REQUEST; returns what is left in the buffer."""
    while True:
        while len(buffer) >= 8:
            _, kind, _, clen, plen, _ = struct.unpack(">BBHHBB", buffer[:8])
            if len(buffer) < 8 + clen + plen:
                break
            buffer = buffer[8 + clen + plen:]
            if kind == 3:
                return buffer
        chunk = s.recv(65536)
        if not chunk:
            raise IOError("connection closed before END_REQUEST")
        buffer += chunk


def send(sock_path, count, keep):
    wire = request_bytes(b"/hello", keep)
    s = None
    for _ in range(count):
        if s is None:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(sock_path)
        s.sendall(wire)
        read_response(s, b"")
        if not keep:
            s.close()
            s = None
    if s is not None:
        s.close()


def stripped_copies(build):
    """valgrind 3.19 cannot read the DWARF 5 that Swift 6 writes: measure copies without it (symbols kept)."""
    copies = tempfile.mkdtemp(prefix="forklift-stripped-")
    strip = shutil.which("strip") or sys.exit("strip (binutils) is needed")
    for name in ["forklift", "libHello.so"]:
        shutil.copy2(f"{build}/{name}", f"{copies}/{name}")
        subprocess.run([strip, "--strip-debug", f"{copies}/{name}"], check=True)  # keeps the symbols
    return copies


def worker_instructions(build, count, keep, valgrind):
    out = tempfile.mkdtemp(prefix="forklift-callgrind-")
    pool = (f'max_children = 1\n[pool.www.plugin.hello]\npath = "{build}/libHello.so"\nroute = "/hello"\n')
    server = fcgi.Server(build, pool, wrapper=[valgrind, "--tool=callgrind", "--trace-children=yes",
                                               f"--callgrind-out-file={out}/cg.%p", "--dump-instr=no"])
    try:
        # Under valgrind the command line is valgrind's; the thread name (comm) is forklift's title.
        workers = [p for p in fcgi.descendants(server.master.pid) if open(f"/proc/{p}/comm").read().startswith("forklift: work")]
        if len(workers) != 1:
            raise SystemExit(f"expected one worker, found {workers}")
        send(server.sock, count, keep)
    finally:
        server.stop()
    path = f"{out}/cg.{workers[0]}"
    total = None
    with open(path) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                total = int(line.split()[1])
    shutil.rmtree(out, ignore_errors=True)
    if total is None:
        raise SystemExit(f"no total in {path}")
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default=".build/release")
    parser.add_argument("--mode", choices=["new", "kept", "both"], default="both")
    parser.add_argument("--low", type=int, default=2000)
    parser.add_argument("--high", type=int, default=12000)
    parser.add_argument("--params", choices=["cgi-fcgi", "nginx"], default="cgi-fcgi",
                        help="the 4 params cgi-fcgi sends, or the 20 nginx sends for a GET")
    args = parser.parse_args()
    global PARAMS
    PARAMS = args.params
    valgrind = shutil.which("valgrind") or sys.exit("valgrind is needed: apt-get install -y valgrind")
    build = stripped_copies(os.path.abspath(args.build))
    for mode in (["new", "kept"] if args.mode == "both" else [args.mode]):
        keep = mode == "kept"
        low = worker_instructions(build, args.low, keep, valgrind)
        high = worker_instructions(build, args.high, keep, valgrind)
        per = (high - low) / (args.high - args.low)
        label = "kept connection (FCGI_KEEP_CONN)" if keep else "new connection per request"
        print(f"{label}: {per:,.0f} instructions per request in the worker "
              f"({args.low} requests: {low:,}, {args.high}: {high:,})")


if __name__ == "__main__":
    main()
