#!/usr/bin/python3
"""The agents path against a plain reverse proxy, in the same run.

Baseline: Debian's nginx proxying to the fake upstream (tests/fake).  Measured:
`dagi node` answering POST /v1/chat/completions for an agent whose model is the
same fake upstream (gateway -> router -> swapper, in-process delivery between
the roles, metrics on).  Both on CPU 0, wrk on CPU 1, alternating rounds.

Reported: requests/s at concurrency 64 (ratio to nginx), added p50 at
concurrency 1 over calling the fake directly (ratio to nginx's), CPU time per
request of the proxy process (ratio), dagi's idle RSS.

usage: bench/agents_bench.py --bin build/release/dagi --fake build/release/fake_upstream"""
import argparse
import json
import os
import re
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--fake", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    a = ap.parse_args()
    t = tempfile.mkdtemp(prefix="dagi-agents-bench-")
    procs = []
    try:
        fake = subprocess.Popen(["taskset", "-c", "0", a.fake, "--listen", "127.0.0.1:0"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        procs.append(fake)
        fake_addr = fake.stdout.readline().split()[1]
        nport = free_port()
        with open(f"{t}/nginx.conf", "w") as f:
            f.write(NGINX.format(t=t, fake=fake_addr, port=nport))
        procs.append(subprocess.Popen(["taskset", "-c", "0", "nginx", "-p", t, "-c", f"{t}/nginx.conf"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        os.makedirs(f"{t}/prompts")
        with open(f"{t}/prompts/bench.md", "w") as f:
            f.write("You are a benchmark agent.\n")
        with open(f"{t}/registry.yml", "w") as f:
            f.write("version: 1\nagents:\n  - id: bench\n    name: Bench\n    role: benchmark\n"
                    "    system_prompt: {file: bench.md, version: '1'}\n"
                    "    model: {default: fake, fallbacks: [builtin]}\n")
        with open(f"{t}/dagi.yml", "w") as f:
            f.write(f"log:\n  level: warn\nswapper:\n  models:\n    - id: fake\n      provider: openai\n"
                    f"      base_url: http://{fake_addr}/v1\n      capabilities: [chat, tools]\n"
                    f"router:\n  registry: {t}/registry.yml\n  prompts_dir: {t}/prompts\n")
        dport = free_port()
        dagi = subprocess.Popen(["taskset", "-c", "0", a.bin, "node", "--config", f"{t}/dagi.yml",
                                 "--data-dir", f"{t}/data", "--listen", f"127.0.0.1:{dport}"],
                                stdout=subprocess.DEVNULL, stderr=open(f"{t}/dagi.log", "w"))
        procs.append(dagi)
        wait_http(f"http://127.0.0.1:{dport}/readyz")
        key = open(f"{t}/data/admin.key").read().strip()
        script = f"{t}/post.lua"
        with open(script, "w") as f:
            f.write('wrk.method = "POST"\n'
                    f"wrk.body = '{json.dumps(BODY)}'\n"
                    'wrk.headers["Content-Type"] = "application/json"\n'
                    f'wrk.headers["Authorization"] = "Bearer {key}"\n')
        time.sleep(1)
        idle = rss_kb(dagi.pid)
        urls = {"fake": f"http://{fake_addr}/v1/chat/completions",
                "nginx": f"http://127.0.0.1:{nport}/v1/chat/completions",
                "dagi": f"http://127.0.0.1:{dport}/v1/chat/completions"}
        for name in ("nginx", "dagi"):
            wrk(urls[name], 8, 1, script)  # warm-up
        rps = {"nginx": [], "dagi": []}
        cpu = {"nginx": [], "dagi": []}
        p50 = {"fake": [], "nginx": [], "dagi": []}
        # nginx's one worker: the master only forks and waits.
        nginx_master = procs[1].pid
        nginx_workers = [int(p) for p in subprocess.run(["pgrep", "-P", str(nginx_master)],
                         capture_output=True, text=True).stdout.split()]
        for r in range(a.rounds):
            for name in ("nginx", "dagi"):
                pid = dagi.pid if name == "dagi" else (nginx_workers[-1] if nginx_workers else None)
                c0 = cpu_seconds(pid) if pid else 0
                v, total, _ = wrk(urls[name], 64, a.seconds, script)
                c1 = cpu_seconds(pid) if pid else 0
                rps[name].append(v)
                cpu[name].append((c1 - c0) / max(total, 1) * 1e6)
            for name in ("fake", "nginx", "dagi"):
                _, _, lat = wrk(urls[name], 1, a.seconds, script, latency=True)
                p50[name].append(lat)
            print(f"round {r + 1}: c64 nginx {rps['nginx'][-1]:,.0f} dagi {rps['dagi'][-1]:,.0f} req/s;"
                  f" c1 p50 fake {p50['fake'][-1]:.0f} nginx {p50['nginx'][-1]:.0f} dagi {p50['dagi'][-1]:.0f} us;"
                  f" cpu/req nginx {cpu['nginx'][-1]:.1f} dagi {cpu['dagi'][-1]:.1f} us")
        med = {k: statistics.median(v) for k, v in rps.items()}
        mp = {k: statistics.median(v) for k, v in p50.items()}
        mc = {k: statistics.median(v) for k, v in cpu.items()}
        add_n, add_d = mp["nginx"] - mp["fake"], mp["dagi"] - mp["fake"]
        print(f"\nnon-streaming /v1/chat/completions, {a.rounds} rounds x {a.seconds}s, medians")
        print(f"  c64 requests/s: nginx {med['nginx']:,.0f}, dagi {med['dagi']:,.0f} -> {med['dagi']/med['nginx']:.2f}x (target >= 0.5)")
        print(f"  c1 added p50 over the fake: nginx {add_n:.0f} us, dagi {add_d:.0f} us -> {add_d/max(add_n,1):.2f}x (target <= 3)")
        print(f"  CPU per request: nginx {mc['nginx']:.1f} us, dagi {mc['dagi']:.1f} us -> {mc['dagi']/max(mc['nginx'],0.1):.2f}x (target <= 3)")
        print(f"  dagi idle RSS {idle/1024:.1f} MB (target <= 20 MB)")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(t, ignore_errors=True)


if __name__ == "__main__":
    main()
