"""A minimal FastCGI client and /proc helpers shared by the benchmarks."""
import os, socket, struct

# The benchmarks' pools name no user: as root, forklift runs their workers as root only when told.
ROOT_FLAG = ["--allow-to-run-as-root"] if os.geteuid() == 0 else []

def request(sock_path, params, timeout=30):
    """One FastCGI request over a unix socket; returns the raw FCGI_STDOUT bytes."""
    def record(kind, content):
        pad = (8 - len(content) % 8) % 8
        return struct.pack(">BBHHBB", 1, kind, 1, len(content), pad, 0) + content + b"\0" * pad
    def length(n):
        return bytes([n]) if n < 128 else struct.pack(">I", n | 0x80000000)
    body = b"".join(length(len(k)) + length(len(v)) + k + v for k, v in params)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(sock_path)
    s.sendall(record(1, struct.pack(">HB5x", 1, 0)) + record(4, body) + record(4, b"") + record(5, b""))
    out, data = b"", b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            raise IOError("connection closed before END_REQUEST")
        data += chunk
        while len(data) >= 8:
            _, kind, _, clen, plen, _ = struct.unpack(">BBHHBB", data[:8])
            if len(data) < 8 + clen + plen:
                break
            content, data = data[8:8 + clen], data[8 + clen + plen:]
            if kind == 6:
                out += content
            elif kind == 3:
                s.close()
                return out

def get(sock_path, path):
    return request(sock_path, [(b"REQUEST_METHOD", b"GET"), (b"SCRIPT_NAME", path.encode()), (b"REQUEST_URI", path.encode())])

def title(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")[0].decode()
    except OSError:
        return ""

def descendants(root):
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    found, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found

def smaps(pid):
    """Pss, Private_Dirty, ... of /proc/PID/smaps_rollup, in KiB."""
    values = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                    values[parts[0][:-1]] = int(parts[1])
    except OSError:
        pass
    return values

def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]

class Server:
    """`forklift run` on a one-pool configuration in a temporary directory; `pool` is the TOML
    after the pool's `listen` line ({sock} is the socket path)."""
    def __init__(self, build, pool, global_extra="", timeout=900, wrapper=()):
        import subprocess, tempfile, time
        self.directory = tempfile.mkdtemp(prefix="forklift-bench-")
        os.makedirs(self.directory + "/conf.d")
        self.sock = self.directory + "/www.sock"
        self.log_path = self.directory + "/forklift.log"
        with open(self.directory + "/conf.d/00.toml", "w") as f:
            f.write(f'[global]\npid = "{self.directory}/forklift.pid"\n{global_extra}\n'
                    f'[pool.www]\nlisten = "{self.sock}"\n{pool}\n')
        log = open(self.log_path, "w")
        self.master = subprocess.Popen(list(wrapper) + [build + "/forklift", "run", "--conf", self.directory + "/conf.d"] + ROOT_FLAG, stdout=log, stderr=log)
        deadline = time.time() + timeout
        while "forklift is ready" not in self.log():
            if time.time() > deadline or self.master.poll() is not None:
                self.stop()
                raise SystemExit(f"forklift did not start; see {self.log_path}")
            time.sleep(0.05)

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def stop(self):
        import signal
        if self.master.poll() is None:
            self.master.send_signal(signal.SIGTERM)
            self.master.wait(timeout=120)
