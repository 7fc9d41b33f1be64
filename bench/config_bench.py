#!/usr/bin/python3
"""How fast a pushed document reaches the data plane (issue 12: "well under
a second"), in the same run as a baseline.

Two `dagi` processes on one nats-server: a whole node (with the config
registry) and a data-plane node (`--roles gateway,router,swapper`, no
registry of its own), both with the offline builtin model.  Each round
pushes a new helion prompt through the control node's admin API
(PUT /v1/config/prompts/helion.md) and then polls the data-plane node's
/metrics until config_applied_revision shows the push's revision: from then
on every request there routes with the new prompt (the snapshot is swapped
before the gauge is set; tests/e2e/test_cplane.py checks the prompt itself
reaches the model).

Reported, medians over the rounds:
  push       the PUT's own time (validate the whole set, store a revision)
  propagate  from the PUT's answer to the first request on the other node
             that used the new prompt (KV publish, watch, build, swap)
  baseline   one GET /metrics on the data-plane node, the poll's own cost

usage: bench/config_bench.py --bin build/release/dagi [--rounds 20]"""
import argparse
import http.client
import json
import os
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def wait_file(path, timeout=20):
    t = time.monotonic() + timeout
    while time.monotonic() < t:
        if os.path.exists(path):
            with open(path) as f:
                text = f.read()
            if text.endswith("\n"):
                return text.strip()
        time.sleep(0.02)
    raise SystemExit(f"timed out waiting for {path}")


def request(addr, method, path, body=None, headers=None):
    c = http.client.HTTPConnection(*addr.rsplit(":", 1), timeout=30)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--rounds", type=int, default=20)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="dagi-config-bench-")
    procs = []
    try:
        nats_dir = os.path.join(tmp, "nats")
        os.makedirs(nats_dir)
        procs.append(subprocess.Popen(["nats-server", "-a", "127.0.0.1", "-p", "-1", "-js", "-sd",
                                       nats_dir, "--ports_file_dir", nats_dir],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        t = time.monotonic() + 10
        url = None
        while not url and time.monotonic() < t:
            for n in os.listdir(nats_dir):
                if n.endswith(".ports"):
                    try:
                        url = json.load(open(os.path.join(nats_dir, n)))["nats"][0]
                    except (ValueError, KeyError):
                        pass
            time.sleep(0.02)
        # The sample configuration (its models, agents and policy), on the
        # bench's own bus.
        cfg = os.path.join(tmp, "dagi.yml")
        with open(os.path.join(REPO, "config", "dagi.yml")) as f:
            text = f.read().replace("config/", f"{REPO}/config/")
        with open(cfg, "w") as f:
            f.write(text)
        env = dict(os.environ, DAGI_BUS_URL=url, DAGI_LOG_LEVEL="warn")
        nodes = {}
        for name, extra in (("control", []), ("data", ["--roles", "gateway,router,swapper"])):
            d = os.path.join(tmp, name)
            procs.append(subprocess.Popen([a.bin, "node", "-c", cfg, "-d", d, "-l", "127.0.0.1:0",
                                           *extra], stdout=subprocess.DEVNULL, env=env,
                                          stderr=open(os.path.join(tmp, name + ".log"), "w")))
            addr = wait_file(os.path.join(d, "http.addr")).split("://", 1)[-1]
            key = wait_file(os.path.join(d, "admin.key"))
            nodes[name] = (addr, {"Authorization": f"Bearer {key}"})
        caddr, cauth = nodes["control"]
        daddr, _ = nodes["data"]
        push_ms, prop_ms, base_ms = [], [], []
        for _ in range(a.rounds):
            tag = secrets.token_hex(6)
            text = f"You are Helion, bench round {tag}.\n".encode()
            t0 = time.monotonic()
            st, body = request(caddr, "PUT", "/v1/config/prompts/helion.md", text, cauth)
            t1 = time.monotonic()
            assert st == 200, body
            want = f"config_applied_revision {json.loads(body)['revision']}"
            while True:
                st, body = request(daddr, "GET", "/metrics")
                if want.encode() in body:
                    break
                if time.monotonic() - t1 > 10:
                    raise SystemExit("the push never arrived")
            t2 = time.monotonic()
            b0 = time.monotonic()
            request(daddr, "GET", "/metrics")
            base_ms.append((time.monotonic() - b0) * 1000)
            push_ms.append((t1 - t0) * 1000)
            prop_ms.append((t2 - t1) * 1000)
        med = statistics.median
        print(f"config push -> data plane, medians of {a.rounds} rounds")
        print(f"  push       {med(push_ms):8.2f} ms  (validate + store a revision)")
        print(f"  propagate  {med(prop_ms):8.2f} ms  (p90 {sorted(prop_ms)[int(0.9 * len(prop_ms))]:.2f} ms)"
              f"  target: well under 1000 ms")
        print(f"  baseline   {med(base_ms):8.2f} ms  one GET /metrics on the data-plane node;"
              f" propagate = {med(prop_ms) / med(base_ms):.1f}x")
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
