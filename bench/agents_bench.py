#!/usr/bin/python3
"""The agents path against a plain reverse proxy, in the same run.

Baseline: Debian's nginx proxying to the fake upstream (tests/fake).  Measured:
dagi answering POST /v1/chat/completions for an agent whose model is the
same fake upstream (gateway -> router -> swapper, metrics on), either as one
`dagi node` (in-process delivery between the roles, --mode inproc) or as
three processes `dagi gateway|router|swapper` talking through a nats-server
(--mode nats).  dagi, nginx and the fake share CPU 0; the load generator
runs on CPU 1; rounds alternate.

Reported, medians over the rounds:
  non-streaming  requests/s at concurrency 64 (ratio to nginx), added p50 at
                 concurrency 1 over calling the fake directly (ratio to
                 nginx's), CPU time per request (ratio; in nats mode the three
                 roles and nats-server together)
  streaming      added time to first token (a content chunk) over the fake's
                 own, sequential requests; N concurrent SSE streams: how many
                 finished, the longest gap between two chunks of one stream,
                 the wall time against the ideal
  idle RSS       of the dagi process(es)

dagi is called the way users call it: with a user API key (made through the
admin API) and rate limits on (per key and per IP, set high enough never to
refuse), so the gate's work is in the figures; --admin-key uses the admin key
and no limits instead.

usage: bench/agents_bench.py --bin build/release/dagi --fake build/release/fake_upstream
       [--mode inproc|nats] [--rounds 3] [--seconds 5] [--streams 1000] [--admin-key]"""
import argparse
import json
import os
import re
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request

BODY = {"model": "bench", "messages": [{"role": "user", "content": "hello there"}]}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def wrk(url, conns, seconds, script, latency=False):
    args = ["taskset", "-c", "1", "wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "-s", script]
    if latency:
        args.append("--latency")
    out = subprocess.run(args + [url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    p50 = None
    m = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    if m:
        p50 = float(m.group(1)) * {"us": 1, "ms": 1000, "s": 1e6}[m.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"{url}: {errors.group(1)} failed responses:\n{out}")
    return rps, total, p50


def wait_http(url, headers=None, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            req = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(req, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not come up")


def post_json(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.read()


NGINX = """
daemon off; worker_processes 1; pid {t}/nginx.pid; error_log {t}/error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {t}/b; proxy_temp_path {t}/p; fastcgi_temp_path {t}/f;
  uwsgi_temp_path {t}/u; scgi_temp_path {t}/s;
  upstream fake {{ server {fake}; keepalive 64; }}
  server {{ listen 127.0.0.1:{port};
    location / {{ proxy_pass http://fake; proxy_http_version 1.1;
                 proxy_set_header Connection ""; proxy_buffering off; }} }}
}}
"""

# --- streaming clients (raw sockets: the same client times dagi and the fake) ---


def stream_request(host, port, body, auth):
    payload = json.dumps(body).encode()
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n")
    if auth:
        head += f"Authorization: Bearer {auth}\r\n"
    return head.encode() + b"\r\n" + payload


def first_content_at(sock, buf):
    """Reads until the first SSE event with non-empty delta content; returns
    the time it arrived and the bytes read so far."""
    while b'"content":"' not in buf or re.search(rb'"content":"[^"]', buf) is None:
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit("stream closed before the first token")
        buf += chunk
    return time.perf_counter_ns(), buf


def read_to_done(sock, buf):
    while b"[DONE]" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit("stream closed before [DONE]")
        buf += chunk


def ttft_us(addr, auth, n):
    """Median time to the first content chunk over n sequential streamed
    requests, each on a fresh connection (as a chat client opens one)."""
    host, port = addr.rsplit(":", 1)
    body = dict(BODY, stream=True)
    req = stream_request(host, port, body, auth)
    times = []
    for _ in range(n):
        s = socket.create_connection((host, int(port)))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t0 = time.perf_counter_ns()
        s.sendall(req)
        t1, buf = first_content_at(s, b"")
        read_to_done(s, buf)
        s.close()
        times.append((t1 - t0) / 1000)
    return statistics.median(times)


def many_streams(addr, auth, n, words):
    """n streamed requests at once; returns (finished, longest gap in ms
    between two reads of one stream, wall seconds)."""
    host, port = addr.rsplit(":", 1)
    text = " ".join(f"w{i}" for i in range(words))
    req = stream_request(host, port, dict(BODY, stream=True,
                                          messages=[{"role": "user", "content": text}]), auth)
    sel = selectors.DefaultSelector()
    state = {}
    t0 = time.monotonic()
    for _ in range(n):
        s = socket.create_connection((host, int(port)))
        s.setblocking(False)
        state[s] = {"buf": b"", "last": None, "gap": 0.0, "sent": False, "reads": 0}
        sel.register(s, selectors.EVENT_WRITE)
    finished = 0
    gaps = []
    deadline = t0 + 120
    while state and time.monotonic() < deadline:
        for key, ev in sel.select(timeout=1):
            s, st = key.fileobj, state[key.fileobj]
            if ev & selectors.EVENT_WRITE and not st["sent"]:
                s.sendall(req)
                st["sent"] = True
                st["last"] = time.monotonic()
                sel.modify(s, selectors.EVENT_READ)
                continue
            try:
                chunk = s.recv(65536)
            except BlockingIOError:
                continue
            now = time.monotonic()
            if st["reads"]:  # the wait for the first byte is not a gap
                st["gap"] = max(st["gap"], now - st["last"])
            st["reads"] += 1
            st["last"] = now
            st["buf"] = (st["buf"] + chunk)[-256:] if chunk else st["buf"]
            if not chunk or b"[DONE]" in st["buf"]:
                finished += b"[DONE]" in st["buf"]
                gaps.append(st["gap"])
                sel.unregister(s)
                s.close()
                del state[s]
    for s in list(state):
        s.close()
    return finished, max(gaps) * 1000 if gaps else 0.0, time.monotonic() - t0


# --- the processes ---


class Bench:
    def __init__(self, a):
        self.a = a
        self.t = tempfile.mkdtemp(prefix="dagi-agents-bench-")
        self.procs = []
        self.dagi_pids = []  # whose CPU counts as dagi's

    def spawn(self, args, **kw):
        p = subprocess.Popen(["taskset", "-c", "0"] + args, **kw)
        self.procs.append(p)
        return p

    def start_fake(self):
        fake = self.spawn([self.a.fake, "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True)
        self.fake_addr = fake.stdout.readline().split()[1]

    def start_nginx(self):
        port = free_port()
        with open(f"{self.t}/nginx.conf", "w") as f:
            f.write(NGINX.format(t=self.t, fake=self.fake_addr, port=port))
        master = self.spawn(["nginx", "-p", self.t, "-c", f"{self.t}/nginx.conf"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.nginx_addr = f"127.0.0.1:{port}"
        wait_http(f"http://{self.nginx_addr}/v1/models")
        # nginx's one worker: the master only forks and waits.
        workers = subprocess.run(["pgrep", "-P", str(master.pid)], capture_output=True,
                                 text=True).stdout.split()
        self.nginx_pid = int(workers[-1])

    def write_config(self, extra=""):
        if not self.a.admin_key:
            extra += ("auth:\n  rate_limits:\n"
                      "    - {routes: openai, per: key, limit: 100000000, window: 1m}\n"
                      "    - {routes: openai, per: ip, limit: 100000000, window: 1m}\n")
        t = self.t
        os.makedirs(f"{t}/prompts", exist_ok=True)
        with open(f"{t}/prompts/bench.md", "w") as f:
            f.write("You are a benchmark agent.\n")
        with open(f"{t}/registry.yml", "w") as f:
            f.write("version: 1\nagents:\n  - id: bench\n    name: Bench\n    role: benchmark\n"
                    "    system_prompt: {file: bench.md, version: '1'}\n"
                    "    model: {default: fake, fallbacks: [builtin]}\n")
        with open(f"{t}/dagi.yml", "w") as f:
            f.write(f"log:\n  level: warn\nhttp:\n  max_connections: 20000\n"
                    f"swapper:\n  models:\n    - id: fake\n      provider: openai\n"
                    f"      base_url: http://{self.fake_addr}/v1\n      capabilities: [chat, tools]\n"
                    f"router:\n  registry: {t}/registry.yml\n  prompts_dir: {t}/prompts\n{extra}")

    def start_dagi(self):
        t = self.t
        if self.a.mode == "inproc":
            self.write_config()
            port = free_port()
            p = self.spawn([self.a.bin, "node", "--config", f"{t}/dagi.yml", "--data-dir",
                            f"{t}/data", "--listen", f"127.0.0.1:{port}"],
                           stdout=subprocess.DEVNULL, stderr=open(f"{t}/dagi.log", "w"))
            self.dagi_pids = [p.pid]
            self.gateway = p
        else:
            nport = free_port()
            nats = self.spawn(["nats-server", "-a", "127.0.0.1", "-p", str(nport), "-js", "-sd",
                               f"{t}/js"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.write_config(f"bus:\n  url: nats://127.0.0.1:{nport}\n")
            self.dagi_pids = [nats.pid]
            time.sleep(0.5)
            for role in ("swapper", "router", "gateway"):
                port = free_port()
                p = self.spawn([self.a.bin, role, "--config", f"{t}/dagi.yml", "--data-dir",
                                f"{t}/data-{role}", "--listen", f"127.0.0.1:{port}"],
                               stdout=subprocess.DEVNULL, stderr=open(f"{t}/{role}.log", "w"))
                self.dagi_pids.append(p.pid)
                wait_http(f"http://127.0.0.1:{port}/readyz")
            self.gateway = p
            t_data = f"{t}/data-gateway"
        self.dagi_addr = f"127.0.0.1:{port}"
        wait_http(f"http://{self.dagi_addr}/readyz")
        data = f"{t}/data" if self.a.mode == "inproc" else t_data
        self.key = open(f"{data}/admin.key").read().strip()
        if not self.a.admin_key:
            req = urllib.request.Request(
                f"http://{self.dagi_addr}/v1/admin/keys",
                data=json.dumps({"user_id": "bench", "name": "agents bench"}).encode(),
                headers={"Content-Type": "application/json",
                         "Authorization": "Bearer " + self.key})
            with urllib.request.urlopen(req, timeout=5) as r:
                self.key = json.loads(r.read())["key"]
        self.roles = self.dagi_pids if self.a.mode == "inproc" else self.dagi_pids[1:]

    def cpu(self, pids):
        return sum(cpu_seconds(p) for p in pids)

    def stop(self):
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        if os.environ.get("KEEP"):
            print("kept", self.t)
        else:
            shutil.rmtree(self.t, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--fake", required=True)
    ap.add_argument("--mode", choices=["inproc", "nats"], default="inproc")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--ttft-requests", type=int, default=300)
    ap.add_argument("--admin-key", action="store_true",
                    help="call with the admin key and no rate limits instead of a user key")
    a = ap.parse_args()
    b = Bench(a)
    try:
        b.start_fake()
        b.start_nginx()
        b.start_dagi()
        script = f"{b.t}/post.lua"
        with open(script, "w") as f:
            f.write('wrk.method = "POST"\n'
                    f"wrk.body = '{json.dumps(BODY)}'\n"
                    'wrk.headers["Content-Type"] = "application/json"\n'
                    f'wrk.headers["Authorization"] = "Bearer {b.key}"\n')
        time.sleep(1)
        idle = sum(rss_kb(p) for p in b.roles)
        urls = {"fake": f"http://{b.fake_addr}/v1/chat/completions",
                "nginx": f"http://{b.nginx_addr}/v1/chat/completions",
                "dagi": f"http://{b.dagi_addr}/v1/chat/completions"}
        for name in ("nginx", "dagi"):
            wrk(urls[name], 8, 1, script)  # warm-up
        rps = {"nginx": [], "dagi": []}
        cpu = {"nginx": [], "dagi": []}
        p50 = {"fake": [], "nginx": [], "dagi": []}
        ttft = {"fake": [], "dagi": []}
        print(f"mode {a.mode}: dagi {'one process' if a.mode == 'inproc' else 'gateway, router, swapper + nats-server'}, "
              f"{'admin key, no rate limits' if a.admin_key else 'a user API key, rate limits on'}")
        for r in range(a.rounds):
            for name in ("nginx", "dagi"):
                pids = b.dagi_pids if name == "dagi" else [b.nginx_pid]
                c0 = b.cpu(pids)
                v, total, _ = wrk(urls[name], 64, a.seconds, script)
                c1 = b.cpu(pids)
                rps[name].append(v)
                cpu[name].append((c1 - c0) / max(total, 1) * 1e6)
            for name in ("fake", "nginx", "dagi"):
                _, _, lat = wrk(urls[name], 1, a.seconds, script, latency=True)
                p50[name].append(lat)
            ttft["fake"].append(ttft_us(b.fake_addr, None, a.ttft_requests))
            ttft["dagi"].append(ttft_us(b.dagi_addr, b.key, a.ttft_requests))
            print(f"round {r + 1}: c64 nginx {rps['nginx'][-1]:,.0f} dagi {rps['dagi'][-1]:,.0f} req/s;"
                  f" c1 p50 fake {p50['fake'][-1]:.0f} nginx {p50['nginx'][-1]:.0f} dagi {p50['dagi'][-1]:.0f} us;"
                  f" cpu/req nginx {cpu['nginx'][-1]:.1f} dagi {cpu['dagi'][-1]:.1f} us;"
                  f" ttft fake {ttft['fake'][-1]:.0f} dagi {ttft['dagi'][-1]:.0f} us", flush=True)
        med = {k: statistics.median(v) for k, v in rps.items()}
        mp = {k: statistics.median(v) for k, v in p50.items()}
        mc = {k: statistics.median(v) for k, v in cpu.items()}
        mt = {k: statistics.median(v) for k, v in ttft.items()}

        # Many streams at once: 20 tokens 100 ms apart, so each lasts ~2 s.
        post_json(f"http://{b.fake_addr}/_fake/behaviour", {"model": "*", "token_delay_ms": 100})
        words, delay = 19, 0.1
        finished, gap, wall = many_streams(b.dagi_addr, b.key, a.streams, words)
        peak = sum(rss_kb(p) for p in b.roles)
        post_json(f"http://{b.fake_addr}/_fake/reset", {})

        add_n, add_d = mp["nginx"] - mp["fake"], mp["dagi"] - mp["fake"]
        print(f"\n/v1/chat/completions, mode {a.mode}, {a.rounds} rounds x {a.seconds}s, medians")
        print(f"  c64 requests/s: nginx {med['nginx']:,.0f}, dagi {med['dagi']:,.0f} -> {med['dagi']/med['nginx']:.2f}x (target >= 0.5)")
        print(f"  c1 added p50 over the fake: nginx {add_n:.0f} us, dagi {add_d:.0f} us -> {add_d/max(add_n,1):.2f}x (target <= 3)")
        print(f"  CPU per request: nginx {mc['nginx']:.1f} us, dagi {mc['dagi']:.1f} us -> {mc['dagi']/max(mc['nginx'],0.1):.2f}x (target <= 3)")
        print(f"  streaming: added time to first token {mt['dagi'] - mt['fake']:.0f} us"
              f" (fake {mt['fake']:.0f} us, dagi {mt['dagi']:.0f} us; target <= 300)")
        print(f"  {a.streams} concurrent streams of {words + 1} tokens {delay * 1000:.0f} ms apart:"
              f" {finished} finished, longest gap {gap:.0f} ms, {wall:.1f} s"
              f" (ideal {(words) * delay:.1f} s); RSS {peak / 1024:.1f} MB")
        print(f"  dagi idle RSS {idle/1024:.1f} MB (target <= 20 MB{'' if a.mode == 'inproc' else ', three processes together'})")
    finally:
        b.stop()


if __name__ == "__main__":
    main()
