"""The swapper role through the real binary: the bus subject and the operator
routes, with the offline builtin provider and the fake OpenAI upstream."""
import json
import os
import subprocess

import harness
from harness import wait_until


def infer(node, model, text, stream=True, **kw):
    body = {"subject": "dagi.swapper.infer", "stream": stream, "timeout_ms": 20000,
            "data": {"model": model, "messages": [{"role": "user", "content": text}], **kw}}
    r = node.post("/v1/test/bus/request", body, headers=node.auth(), timeout=60)
    assert r.status == 200, r
    return r.json()


def test_builtin_model_answers_offline_and_streams(ctx):
    n = ctx.node()
    r = infer(n, "builtin", "привіт, хто ти?")
    assert r["ok"], r
    assert r["chunks"] >= 2 and r["in_order"], r
    final = json.loads(r["result"])
    assert final["backend"] == "builtin" and final["model"] == "builtin"
    assert final["usage"]["completion_tokens"] > 0
    m = n.get("/v1/swapper/models", headers=n.auth())
    assert m.status == 200
    assert any(x["id"] == "builtin" for x in m.json()["models"]), m.json()


def test_unknown_model_is_not_found(ctx):
    n = ctx.node()
    r = infer(n, "no-such-model", "hi")
    assert not r["ok"] and r["error"] == "not_found", r


def test_operator_routes_need_the_admin_key(ctx):
    n = ctx.node()
    assert n.get("/v1/swapper/models").status == 401
    assert n.get("/v1/swapper/status").status == 401
    assert n.get("/v1/swapper/status", headers=n.auth()).status == 200


def start_fake(ctx):
    path = os.environ.get("DAGI_FAKE_UPSTREAM") or os.path.join(os.path.dirname(harness.BIN),
                                                                "fake_upstream")
    if not os.path.exists(path):
        ctx.skip("fake_upstream is not built")
    p = subprocess.Popen([path, "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline().split()
    assert line and line[0] == "listening", line
    return p, line[1]


def test_openai_provider_through_the_fake_upstream(ctx):
    fake, addr = start_fake(ctx)
    try:
        n = ctx.node(config=f"""
swapper:
  models:
    - id: fake-gpt
      provider: openai
      base_url: http://{addr}/v1
      capabilities: [chat, tools]
""")
        r = infer(n, "fake-gpt", "one two three")
        assert r["ok"], r
        final = json.loads(r["result"])
        assert final["backend"] == "openai" and final["finish_reason"] == "stop", final
        assert r["chunks"] >= 3, r
        stats = json.loads(n.get("/v1/swapper/status", headers=n.auth()).body)
        assert stats
    finally:
        fake.terminate()
        fake.wait()
