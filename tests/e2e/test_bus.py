"""The bus through the real binary: request/reply on both paths and across
processes, streams, cancel, dead letters, the embedded nats-server, KV."""
import json
import os
import signal
import time

from harness import (NatsClient, NatsError, NatsServer, margin, run_dagi, wait_until)

FAST_CONSUMER = """
bus:
  consumer:
    max_deliver: 3
    backoff_base: 100ms
    backoff_max: 1s
    ack_wait: 5s
"""


def call(node, subject, data=None, **kw):
    body = {"subject": subject, "data": data if data is not None else {}}
    body.update(kw)
    r = node.post("/v1/test/bus/request", body, headers=node.auth(), timeout=60)
    assert r.status == 200, r
    return r.json()


def stats(node):
    return node.get("/v1/test/bus/stats", headers=node.auth()).json()


def request_reply_suite(caller, responder_name, responder):
    """The same checks, whatever the path between caller and responder."""
    base = f"dagi.test.{responder_name}"
    r = call(caller, f"{base}.echo", {"x": 1, "name": "привіт"})
    assert r["ok"], r
    assert json.loads(r["result"]) == {"x": 1, "name": "привіт"}
    # The trace id travels with the request.
    r = caller.post("/v1/test/bus/request", {"subject": f"{base}.echo", "data": {"trace": True}},
                    headers={**caller.auth(), "X-Request-Id": "trace-abc-42"}).json()
    assert r["ok"] and r["result"] == "trace-abc-42", r
    # The responder's error comes back with its code.
    r = call(caller, f"{base}.echo", {"error": "forbidden"})
    assert not r["ok"] and r["error"] == "forbidden", r
    assert "test responder failed" in r["message"]
    # No responder: a clear error, well before the deadline.
    r = call(caller, "dagi.test.nobody.echo", timeout_ms=5000)
    assert not r["ok"] and r["error"] == "unavailable", r
    assert r["elapsed_ms"] < 2000 * (5 if caller.sanitized else 1), r
    # A responder that never answers: the deadline.
    r = call(caller, f"{base}.slow", timeout_ms=300)
    assert not r["ok"] and r["error"] == "timed_out", r
    # 1,000 chunks, complete and in order, then the final result.
    r = call(caller, f"{base}.stream", {"n": 1000, "interval_ms": 0}, stream=True)
    assert r["ok"], r
    assert r["chunks"] == 1000 and r["in_order"], r
    assert json.loads(r["result"]) == {"chunks": 1000}
    # Cancelling mid-stream stops the responder.
    before = stats(responder)
    r = call(caller, f"{base}.stream", {"n": 100000, "interval_ms": 1}, stream=True,
             cancel_after=10)
    assert r["error"] == "cancelled_by_test", r
    wait_until(lambda: stats(responder)["cancelled"] > before["cancelled"], 5,
               "the responder to see the cancel")
    produced = stats(responder)["produced"] - before["produced"]
    time.sleep(0.3)
    assert stats(responder)["produced"] - before["produced"] == produced  # it stopped
    assert produced < 100000


class NodeView:
    def __init__(self, node, sanitized):
        self.node = node
        self.sanitized = sanitized

    def __getattr__(self, name):
        return getattr(self.node, name)


def test_request_reply_in_process(ctx):
    n = ctx.node(config="node:\n  name: solo\n")
    v = NodeView(n, ctx.sanitized)
    request_reply_suite(v, "solo", n)
    m = n.get("/metrics").body.decode()
    assert 'subject="dagi.test.solo.echo",path="inproc"' in m and 'subject="dagi.test.solo.echo",path="nats"' not in m


def test_request_reply_through_nats(ctx):
    n = ctx.node(config="node:\n  name: solo\nbus:\n  inprocess: false\n")
    v = NodeView(n, ctx.sanitized)
    request_reply_suite(v, "solo", n)
    m = n.get("/metrics").body.decode()
    assert 'path="nats"' in m and 'path="inproc"' not in m


def test_request_reply_across_two_processes(ctx):
    nats = NatsServer()
    try:
        a = ctx.node(config=f"node:\n  name: alpha\nbus:\n  url: {nats.url}\n")
        b = ctx.node(config=f"node:\n  name: beta\nbus:\n  url: {nats.url}\n")
        request_reply_suite(NodeView(b, ctx.sanitized), "alpha", a)
        assert stats(a)["requests"] > 0
    finally:
        for n in ctx.nodes:
            n.stop()
        nats.stop()


def test_kv_put_in_one_process_is_seen_in_another(ctx):
    nats = NatsServer()
    try:
        a = ctx.node(config=f"node:\n  name: alpha\nbus:\n  url: {nats.url}\n")
        b = ctx.node(config=f"node:\n  name: beta\nbus:\n  url: {nats.url}\n")
        def put():
            return a.post("/v1/test/kv/agent.helion", {"value": "v1"}, headers=a.auth()).status == 200
        wait_until(put, 10, "the KV bucket")
        wait_until(lambda: b.get("/v1/test/kv", headers=b.auth()).json().get("agent.helion") == "v1",
                   10, "the watcher in the other process")
    finally:
        for n in ctx.nodes:
            n.stop()
        nats.stop()


def bus_status(node):
    return node.get("/v1/admin/status", headers=node.auth()).json()["bus"]


def nats_credentials(node):
    with open(os.path.join(node.data_dir, "nats", "credentials")) as f:
        text = f.read()
    creds = dict(line.split("=", 1) for line in text.split() if "=" in line)
    return creds


def test_embedded_server_refuses_anonymous_connections(ctx):
    n = ctx.node()
    st = bus_status(n)
    assert st["url"] == "embedded" and st["connected"] and st["nats_pid"] > 0
    with open(os.path.join(n.data_dir, "nats", "port")) as f:
        port = f.read().strip()
    url = f"nats://127.0.0.1:{port}"
    try:
        NatsClient(url)
        raise AssertionError("anonymous connection was accepted")
    except (NatsError, OSError) as e:
        assert "Authorization" in str(e) or "closed" in str(e), e


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def test_kill_9_leaves_no_nats_server_and_restarts(ctx):
    n = ctx.node()
    pid = bus_status(n)["nats_pid"]
    assert pid_alive(pid)
    n.kill()
    wait_until(lambda: not pid_alive(pid), 5, "the nats-server child to die with its parent")
    n.start()
    st = bus_status(n)
    assert st["connected"] and st["streams_ready"] and st["nats_pid"] != pid


def test_dead_letters_and_replay(ctx):
    n = ctx.node(config=FAST_CONSUMER)
    wait_until(lambda: n.post("/v1/test/work", {"fail": False}, headers=n.auth()).status == 200,
               10, "the work stream")
    job = n.post("/v1/test/work", {"fail": True}, headers=n.auth()).json()["id"]
    attempts = lambda: n.get("/v1/test/work/attempts", headers=n.auth()).json().get(job, 0)
    wait_until(lambda: attempts() >= 3, 20, "three deliveries")
    out = None
    def listed():
        nonlocal out
        rc, out, _ = run_dagi("dlq", "list", "--data-dir", n.data_dir)
        return rc == 0 and len(json.loads(out)) > 0
    wait_until(listed, 10, "the dead letter to be listed")
    letters = json.loads(out)
    assert len(letters) == 1, letters
    dl = letters[0]
    assert dl["deliveries"] == 3 and "asked this job to fail" in dl["error"], dl
    assert dl["original_subject"] == "dagi.work.test"
    rc, out, err = run_dagi("dlq", "show", str(dl["seq"]), "--data-dir", n.data_dir)
    assert rc == 0, err
    shown = json.loads(out)
    assert shown["headers"]["Dagi-Dlq-Deliveries"] == "3"
    time.sleep(0.5)
    assert attempts() == 3  # no fourth delivery: it is dead
    rc, out, err = run_dagi("dlq", "replay", str(dl["seq"]), "--data-dir", n.data_dir)
    assert rc == 0, err
    wait_until(lambda: attempts() >= 4, 10, "the replayed job to be delivered again")
    # The alert went out on the event stream.
    creds = nats_credentials(n)
    with open(os.path.join(n.data_dir, "nats", "port")) as f:
        url = f"nats://127.0.0.1:{f.read().strip()}"
    c = NatsClient(url, creds["user"], creds["password"])
    _, _, body = c.request("$JS.API.STREAM.MSG.GET.DAGI_EVENTS",
                           json.dumps({"last_by_subj": "ops.alert.warning"}).encode())
    c.close()
    import base64
    msg = json.loads(body)["message"]
    alert = json.loads(base64.b64decode(msg["data"]))
    assert alert["type"] == "ops.alert" and alert["data"]["deliveries"] == 3, alert


def test_dlq_command_errors(ctx):
    rc, _, err = run_dagi("dlq")
    assert rc == 2
    rc, _, err = run_dagi("dlq", "show", "abc")
    assert rc == 2
    rc, _, err = run_dagi("dlq", "list", "--data-dir", "/nonexistent-dagi")
    assert rc == 1 and "no node is running" in err


def test_frozen_nats_server_loses_nothing(ctx):
    n = ctx.node(config="node:\n  name: solo\nbus:\n  inprocess: false\n  request_timeout: 2s\n")
    pid = bus_status(n)["nats_pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        import threading
        result = {}
        t = threading.Thread(target=lambda: result.update(
            pub=n.post("/v1/test/bus/publish", {"count": 200}, headers=n.auth(), timeout=120).json()))
        t.start()
        r = call(n, "dagi.test.solo.echo", {"x": 1}, timeout_ms=1000)
        assert not r["ok"] and r["error"] in ("timed_out", "unavailable"), r
        time.sleep(10 - 1)
    finally:
        os.kill(pid, signal.SIGCONT)
    t.join(margin(60))
    pub = result["pub"]
    assert pub["acked"] + pub["failed"] == 200, pub  # every publish accounted for
    wait_until(lambda: call(n, "dagi.test.solo.echo", {"x": 2})["ok"], 15, "requests to resume")
    wait_until(lambda: n.get("/readyz").status == 200, 15, "readiness after the freeze")
    again = n.post("/v1/test/bus/publish", {"count": 50}, headers=n.auth(), timeout=60).json()
    assert again["acked"] == 50, again


def test_readyz_reports_the_bus(ctx):
    n = ctx.node()
    r = n.get("/readyz").json()
    assert r["checks"]["bus"] == "ok" and r["checks"]["jetstream"] == "ok", r
