"""The control plane reaching the data plane: a document pushed to the config
registry reaches the running router through the KV bucket and the next
request uses it; a rollback restores it; an invalid document changes
nothing; a data-plane node that cannot reach the registry runs on its last
known copy."""
import json
import os
import secrets
import tempfile
import time

import harness
from harness import margin, run_dagi, wait_until
from test_router import config, Setup
from test_swapper import start_fake

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def fake_stats(addr):
    import http.client
    c = http.client.HTTPConnection(*addr.rsplit(":", 1), timeout=10)
    c.request("GET", "/_fake/stats")
    r = c.getresponse()
    body = json.loads(r.read())
    c.close()
    return body


def ask_helion(node, message="hello"):
    r = node.post("/v1/agents/helion/infer", {"prompt": message}, headers=node.auth(), timeout=60)
    assert r.status == 200, r
    return r.json()


def system_prompt_seen(addr):
    last = fake_stats(addr)["last_request"] or {}
    msgs = last.get("messages") or []
    return msgs[0]["content"] if msgs and msgs[0].get("role") == "system" else None


def push(node, doc, text, *extra):
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write(text)
        path = f.name
    try:
        return run_dagi("config", "push", doc, path, "-d", node.data_dir, *extra)
    finally:
        os.unlink(path)


def original_prompt():
    with open(os.path.join(REPO, "config/prompts/helion.md")) as f:
        return f.read()


def wait_for_prompt(s, want, what):
    """Asks until the model sees `want` as the system prompt; returns seconds."""
    t0 = time.monotonic()

    def seen():
        ask_helion(s.node)
        return system_prompt_seen(s.addr) == want
    wait_until(seen, 10, what, interval=0.01)
    return time.monotonic() - t0


def test_a_pushed_prompt_reaches_the_router_and_rolls_back(ctx):
    s = Setup(ctx)
    try:
        ask_helion(s.node)
        assert system_prompt_seen(s.addr) == original_prompt()
        new = f"You are Helion, canary edition {secrets.token_hex(8)}.\n"
        rc, out, err = push(s.node, "prompts/helion.md", new, "-m", "canary prompt")
        assert rc == 0, (out, err)
        took = wait_for_prompt(s, new, "the pushed prompt to reach the router")
        # The requirement is "well under a second"; the bench measures it.
        # Here a generous margin only catches a change that never arrives by
        # KV (a restart or a poll would).
        assert took < margin(5), took
        rc, out, err = run_dagi("config", "rollback", "prompts/helion.md", "-d", s.node.data_dir)
        assert rc == 0, (out, err)
        wait_for_prompt(s, original_prompt(), "the rollback to reach the router")
        # In one process the registry hands its set to the router directly
        # (the KV path is the next test's).
        m = s.node.get("/metrics").body.decode()
        assert 'config_applied_total{source="registry"}' in m, m[-3000:]
    finally:
        s.close()


def test_an_invalid_document_is_refused_and_nothing_changes(ctx):
    s = Setup(ctx)
    try:
        with open(os.path.join(REPO, "config/agent_registry.yml")) as f:
            good = f.read()
        bad = good.replace("default: qwen3-8b", "default: no-such-model", 1)
        assert bad != good
        rc, out, err = push(s.node, "agents/agent_registry.yml", bad)
        assert rc == 1, (rc, out, err)
        assert "no-such-model" in err and "agents/agent_registry.yml" in err, err
        # The field error names the line.
        line = good[:good.index("default: qwen3-8b")].count("\n") + 1
        assert f":{line}:" in err or f"line {line}" in err, (line, err)
        f = ask_helion(s.node)
        assert system_prompt_seen(s.addr) == original_prompt(), f
        r = s.node.get("/v1/config/agents/agent_registry.yml", headers=s.node.auth())
        assert r.status == 200 and r.body.decode() == good
    finally:
        s.close()


def test_a_data_plane_node_without_the_registry_runs_on_its_last_known_copy(ctx):
    fake, addr = start_fake(ctx)
    nats = None
    try:
        n = ctx.node(config=config(addr))
        new = f"You are Helion, remembered {secrets.token_hex(8)}.\n"
        rc, out, err = push(n, "prompts/helion.md", new)
        assert rc == 0, (out, err)
        copy = os.path.join(n.data_dir, "cplane", "current.json")

        def copied():
            doc = harness.read_json_file(copy)
            return doc and any(d["kind"] == "prompts" and d["name"] == "helion.md"
                               and d["text"] == new for d in doc["docs"])
        wait_until(copied, 10, "the last known copy on disk")
        n.stop()
        # A data-plane node on another bus: no registry answers there and the
        # KV bucket is empty, so only the disk copy knows the pushed prompt
        # (the files still hold the original).
        nats = harness.NatsServer()
        text = config(addr) + f"bus:\n  url: {nats.url}\n"
        with open(n.config_path, "w") as f:
            f.write(text)
        n.args = ["--roles", "gateway,router,swapper"]
        n.start()
        r = n.post("/v1/agents/helion/infer", {"prompt": "hi"}, headers=n.auth(), timeout=60)
        assert r.status == 200, r
        assert system_prompt_seen(addr) == new
        m = n.get("/metrics").body.decode()
        assert 'config_applied_total' not in m or 'source="kv"' not in m, m[-2000:]
    finally:
        if nats:
            nats.stop()
        fake.terminate()
        fake.wait()


def test_a_push_reaches_a_router_in_another_process_through_kv(ctx):
    fake, addr = start_fake(ctx)
    nats = harness.NatsServer()
    try:
        bus = f"bus:\n  url: {nats.url}\n"
        control = ctx.node(config=config(addr) + bus)
        # A data-plane node: no registry of its own, the same bus.
        data = ctx.node(config=config(addr) + bus, args=["--roles", "gateway,router,swapper"])
        new = f"You are Helion, across nodes {secrets.token_hex(8)}.\n"
        rc, out, err = push(control, "prompts/helion.md", new)
        assert rc == 0, (out, err)
        t0 = time.monotonic()

        def seen():
            r = data.post("/v1/agents/helion/infer", {"prompt": "hi"}, headers=data.auth(),
                          timeout=60)
            assert r.status == 200, r
            return system_prompt_seen(addr) == new
        wait_until(seen, 10, "the push to reach the other node's router", interval=0.01)
        assert time.monotonic() - t0 < margin(5)
        m = data.get("/metrics").body.decode()
        assert 'config_applied_total{source="kv"}' in m, m[-3000:]
        # ... and its last known copy is on its own disk (written after the swap).
        copy = os.path.join(data.data_dir, "cplane", "current.json")
        wait_until(lambda: any(d["name"] == "helion.md" and d["text"] == new
                               for d in (harness.read_json_file(copy) or {"docs": []})["docs"]),
                   10, "the other node's last known copy")
    finally:
        nats.stop()
        fake.terminate()
        fake.wait()


def test_feature_flags_pushed_at_run_time(ctx):
    s = Setup(ctx)
    try:
        n = s.node
        flags = ("flags:\n"
                 "  - {id: beta, users: [\"tg:42\"], teams: [core], percent: 10}\n")
        rc, out, err = push(n, "flags/flags.yml", flags)
        assert rc == 0, (out, err)

        def flag(principal, team=None):
            q = f"principal={principal}" + (f"&team={team}" if team else "")
            r = n.get(f"/v1/pdp/flags/beta?{q}", headers=n.auth())
            return r.json()["on"] if r.status == 200 else None
        wait_until(lambda: flag("tg:42") is True, 10, "the flag to arrive")
        assert flag("user:x", "core") is True
        # 10 % of the others, the same ones every time
        share = [flag(f"user:{i}") for i in range(200)]
        assert 5 <= share.count(True) <= 40, share.count(True)
        assert share == [flag(f"user:{i}") for i in range(200)]
        # the kill switch
        rc, out, err = push(n, "flags/flags.yml", flags.replace("{id: beta,", "{id: beta, enabled: false,"))
        assert rc == 0, (out, err)
        wait_until(lambda: flag("tg:42") is False, 10, "the kill switch")
        assert n.get("/v1/pdp/flags/nope?principal=tg:1", headers=n.auth()).status == 404
    finally:
        s.close()
