#!/usr/bin/python3
"""/healthz throughput of `dagi node` against nginx serving a static 200, in
the same run, on the same core, with the same wrk settings; and dagi's idle
resident memory.  Prints medians and the ratio.

Each server is pinned to CPU 0 and wrk to CPU 1 (2-core machines), and the
two servers are measured alternately so drift hits both alike.

usage: bench/http_bench.py --bin build/release/dagi [--rounds 5] [--seconds 5]"""
import argparse
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


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_http(url, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not come up")


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def wrk(url, seconds, conns):
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", f"-c{conns}", f"-d{seconds}s", url],
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    lat = re.search(r"Latency\s+([\d.]+)(\w+)", out)
    return float(m.group(1)), (lat.group(1) + lat.group(2)) if lat else "?"


NGINX_CONF = """
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{ default_type application/json; return 200 '{{"status":"ok"}}'; }}
    }}
}}
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=50)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="dagi-bench-")
    procs = []
    try:
        nport = free_port()
        with open(f"{tmp}/nginx.conf", "w") as f:
            f.write(NGINX_CONF.format(tmp=tmp, port=nport))
        nginx = subprocess.Popen(["taskset", "-c", "0", "nginx", "-p", tmp, "-c", f"{tmp}/nginx.conf"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(nginx)
        dport = free_port()
        dagi = subprocess.Popen(["taskset", "-c", "0", a.bin, "node", "--data-dir", f"{tmp}/data",
                                 "--listen", f"127.0.0.1:{dport}", "--log-level", "warn"],
                                stdout=subprocess.DEVNULL, stderr=open(f"{tmp}/dagi.log", "w"))
        procs.append(dagi)
        nurl, durl = f"http://127.0.0.1:{nport}/healthz", f"http://127.0.0.1:{dport}/healthz"
        wait_http(nurl)
        wait_http(durl)
        time.sleep(1)
        idle_rss = rss_kb(dagi.pid)
        wrk(nurl, 1, a.connections)  # warm-up
        wrk(durl, 1, a.connections)
        n_rps, d_rps = [], []
        for i in range(a.rounds):
            r, nl = wrk(nurl, a.seconds, a.connections)
            n_rps.append(r)
            r, dl = wrk(durl, a.seconds, a.connections)
            d_rps.append(r)
            print(f"round {i + 1}: nginx {n_rps[-1]:>9.0f} req/s ({nl})   dagi {d_rps[-1]:>9.0f} req/s ({dl})   ratio {d_rps[-1] / n_rps[-1]:.2f}")
        loaded_rss = rss_kb(dagi.pid)
        nm, dm = statistics.median(n_rps), statistics.median(d_rps)
        ratios = [d / n for d, n in zip(d_rps, n_rps)]
        print()
        print(f"/healthz, wrk -t1 -c{a.connections} -d{a.seconds}s, server on CPU 0, wrk on CPU 1, {a.rounds} rounds")
        print(f"  nginx median {nm:,.0f} req/s")
        print(f"  dagi  median {dm:,.0f} req/s")
        print(f"  ratio of medians {dm / nm:.2f}  (median of per-round ratios {statistics.median(ratios):.2f}; target >= 0.5)")
        print(f"  dagi idle RSS {idle_rss / 1024:.1f} MB (target < 10 MB); after load {loaded_rss / 1024:.1f} MB")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
