"""The gateway role through the real binary: dagi's /v1/agents/{id}/infer,
the OpenAI-compatible /v1/chat/completions and /v1/models, the original
/route and /health, validation, the gate, and a client disconnect that
reaches the model upstream."""
import http.client
import json
import os

import harness
from harness import wait_until
from test_swapper import start_fake

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLE_MODELS = ["qwen3-8b", "qwen3-vl-8b", "qwen2.5-3b", "qwen2.5-coder-7b", "mistral-7b",
                 "deepseek-chat"]


def router_config(addr=None):
    """The sample registry; its models on the fake upstream, or (addr None)
    on a port nobody listens on, so every agent falls back to builtin."""
    addr = addr or "127.0.0.1:9"
    return f"""
router:
  registry: {REPO}/config/agent_registry.yml
  prompts_dir: {REPO}/config/prompts
swapper:
  models:
""" + "".join(f"    - {{id: {m}, provider: openai, base_url: 'http://{addr}/v1', "
              f"capabilities: [chat, vision, tools]}}\n" for m in SAMPLE_MODELS)


def infer(n, agent, body, **kw):
    return n.post(f"/v1/agents/{agent}/infer", body, headers=n.auth(), **kw)


def need_router(ctx, n):
    """Skips when no router answers yet (the role is being written)."""
    r = infer(n, "helion", {"message": "ping"}, timeout=60)
    if r.status == 503 and b"no responder" in r.body:
        ctx.skip("the router role is not registered yet")
    return r


def error_of(r, status):
    assert r.status == status, r
    return r.json()["error"]


def fake_client(addr):
    host, port = addr.rsplit(":", 1)
    return host, int(port)


def fake_req(addr, method, path, body=None):
    c = http.client.HTTPConnection(*fake_client(addr), timeout=10)
    try:
        c.request(method, path, body=json.dumps(body) if body is not None else None,
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def open_stream(n, path, body):
    c = n.connection(timeout=60)
    c.request("POST", path, body=json.dumps(body),
              headers={"Content-Type": "application/json", **n.auth()})
    return c, c.getresponse()


def sse_events(resp):
    """(event, data) pairs as they arrive."""
    event, data = None, []
    while True:
        line = resp.readline()
        if not line:
            return
        line = line.decode().rstrip("\r\n")
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = None, []
        elif line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])


# --- without a router: the gateway's own answers ---

def test_health_is_public(ctx):
    n = ctx.node(config=router_config())
    r = n.get("/health")
    assert r.status == 200 and r.json() == {"status": "ok"}, r


def test_routes_are_behind_the_gate(ctx):
    n = ctx.node(config=router_config())
    assert n.post("/v1/agents/helion/infer", {"message": "hi"}).status == 401
    assert n.post("/v1/chat/completions", {"model": "helion", "messages": []}).status == 401
    assert n.get("/v1/models").status == 401
    assert n.post("/route", {"agent": "helion", "message": "hi"}).status == 401


def test_infer_validation_names_the_field(ctx):
    n = ctx.node(config=router_config())
    cases = [
        ({}, "message"),
        ({"message": ""}, "message"),
        ({"message": 5}, "message"),
        ({"prompt": ["x"]}, "prompt"),
        ({"message": "hi", "stream": "yes"}, "stream"),
        ({"message": "hi", "user_id": {"x": 1}}, "user_id"),
        ({"message": "hi", "chat": "c1"}, "chat"),
        ({"message": "hi", "chat": {"id": 1, "type": "forum"}}, "chat.type"),
        ({"message": "hi", "images": "data:image/png;base64,AA=="}, "images"),
        ({"message": "hi", "images": ["http://example.com/a.png"]}, "images"),
        ({"message": "hi", "history": [{"role": "robot", "content": "x"}]}, "history"),
        ({"message": "hi", "max_tokens": 0}, "max_tokens"),
        ({"message": "hi", "temperature": 7}, "temperature"),
        ({"message": "hi", "system_prompt": 1}, "system_prompt"),
    ]
    for body, field in cases:
        e = error_of(infer(n, "helion", body), 400)
        assert e["code"] == "invalid_field" and e["field"] == field, (body, e)
    r = n.post("/v1/agents/helion/infer", b"{not json", headers={**n.auth(),
                                                                "Content-Type": "application/json"})
    assert r.status == 400 and r.json()["error"]["code"] == "invalid_json", r


def test_oversized_message_and_images_are_413(ctx):
    n = ctx.node(config=router_config())
    e = error_of(infer(n, "helion", {"message": "x" * (64 * 1024 + 1)}), 413)
    assert e["field"] == "message", e
    big = "data:image/png;base64," + "A" * (9 * 1024 * 1024)
    e = error_of(infer(n, "helion", {"message": "look", "images": [big]}, timeout=30), 413)
    assert e["field"] == "images" and "8 MB bus limit" in e["message"], e


def test_openai_validation_uses_openai_errors(ctx):
    n = ctx.node(config=router_config())
    cases = [
        ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
        ({"model": "helion"}, "messages"),
        ({"model": "helion", "messages": []}, "messages"),
        ({"model": "helion", "messages": [{"role": "wizard", "content": "hi"}]}, "messages[0]"),
        ({"model": "helion", "messages": [{"role": "user", "content": "hi"}], "stream": 1},
         "stream"),
        ({"model": "helion", "messages": [{"role": "user", "content": "hi"}],
          "temperature": "hot"}, "temperature"),
        ({"model": "helion", "messages": [{"role": "user", "content": "hi"}], "tools": {}},
         "tools"),
    ]
    for body, param in cases:
        r = n.post("/v1/chat/completions", body, headers=n.auth())
        e = error_of(r, 400)
        assert e["type"] == "invalid_request_error" and e["param"] == param, (body, e)
        assert set(e) == {"message", "type", "param", "code"}, e


def test_route_needs_agent_and_message(ctx):
    n = ctx.node(config=router_config())
    r = n.post("/route", {"message": "hi"}, headers=n.auth())
    assert r.status == 400 and "agent" in r.json()["detail"], r
    r = n.post("/route", {"agent": "helion"}, headers=n.auth())
    assert r.status == 400 and "message" in r.json()["detail"], r


# --- through the router ---

def test_helion_answers_through_builtin(ctx):
    # Every sample model is unreachable: helion's fallback chain ends in builtin.
    n = ctx.node(config=router_config())
    r = need_router(ctx, n)
    assert r.status == 200, r
    j = r.json()
    assert j["response"] and j["backend"] == "builtin", j
    assert j["usage"]["completion_tokens"] > 0 and j["tokens_used"] > 0, j
    for k in ("model", "policy", "reason"):
        assert k in j, j
    e = error_of(infer(n, "no-such-agent", {"message": "hi"}), 404)
    assert e["code"] == "not_found", e
    # The original contract.
    r = n.post("/route", {"mode": "chat", "agent": "helion", "message": "привіт",
                          "context": {"system_prompt": "be brief"}}, headers=n.auth(), timeout=60)
    assert r.status == 200, r
    j = r.json()
    assert j["ok"] is True and j["error"] is None and j["provider"] == "builtin", j
    assert j["data"]["text"] and j["data"]["usage"]["total_tokens"] > 0, j
    assert j["metadata"]["provider_type"] == "llm", j
    m = n.get("/v1/models", headers=n.auth())
    assert m.status == 200, m
    ids = [x["id"] for x in m.json()["data"]]
    assert m.json()["object"] == "list" and "helion" in ids, m.json()
    assert all(x["object"] == "model" and x["owned_by"] == "dagi" for x in m.json()["data"])
    met = n.get("/metrics", headers=n.auth())
    assert met.status == 200 and b'gateway_overhead_seconds_count{route="infer"}' in met.body, met


def test_infer_streams_sse_tokens(ctx):
    fake, addr = start_fake(ctx)
    try:
        n = ctx.node(config=router_config(addr))
        need_router(ctx, n)
        c, r = open_stream(n, "/v1/agents/helion/infer",
                           {"message": "energy one two three four five", "stream": True})
        assert r.status == 200 and r.getheader("Content-Type").startswith("text/event-stream")
        events = list(sse_events(r))
        c.close()
        tokens = [json.loads(d)["delta"] for e, d in events if e == "token"]
        assert len(tokens) >= 2, events
        last_event, last_data = events[-1]
        assert last_event == "done", events
        done = json.loads(last_data)
        assert done["usage"]["completion_tokens"] > 0 and done["model"], done
        stats = json.loads(fake_req(addr, "GET", "/_fake/stats")[1])
        assert stats["requests"] >= 1 and stats["last_request"]["stream"] is True, stats
    finally:
        fake.terminate()
        fake.wait()


def test_openai_chat_completions(ctx):
    fake, addr = start_fake(ctx)
    try:
        n = ctx.node(config=router_config(addr))
        need_router(ctx, n)
        body = {"model": "helion", "messages": [{"role": "user", "content": "one two three"}]}
        r = n.post("/v1/chat/completions", body, headers=n.auth(), timeout=60)
        assert r.status == 200, r
        j = r.json()
        assert j["object"] == "chat.completion" and j["id"].startswith("chatcmpl-"), j
        assert j["model"] == "helion" and isinstance(j["created"], int), j
        ch = j["choices"][0]
        assert ch["message"]["role"] == "assistant" and ch["message"]["content"], j
        assert ch["finish_reason"] == "stop", j
        u = j["usage"]
        assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"] > 0, u
        assert ch["message"]["content"] == "echo: one two three" and ch["message"]["refusal"] is None
        # Quotes, backslashes, control characters and non-ASCII survive the
        # answer's JSON (written directly, not through jansson).
        tricky = 'a "quoted" \\ back\tslash\nnew line — Енергія 🌞 \u0001'
        r = n.post("/v1/chat/completions",
                   {"model": "helion", "messages": [{"role": "user", "content": tricky}]},
                   headers=n.auth(), timeout=60)
        assert r.status == 200, r
        assert r.json()["choices"][0]["message"]["content"] == "echo: " + tricky, r.body

        # Streamed, chunk by chunk, with the usage chunk and [DONE].
        c, r = open_stream(n, "/v1/chat/completions",
                           {**body, "stream": True, "stream_options": {"include_usage": True}})
        assert r.status == 200, r.status
        datas = [d for _, d in sse_events(r)]
        c.close()
        assert datas[-1] == "[DONE]", datas
        chunks = [json.loads(d) for d in datas[:-1]]
        assert all(x["object"] == "chat.completion.chunk" for x in chunks), chunks
        assert chunks[0]["choices"][0]["delta"]["role"] == "assistant", chunks[0]
        content = [x["choices"][0]["delta"].get("content") for x in chunks if x["choices"]]
        assert len([x for x in content if x]) >= 2, chunks
        assert chunks[-2]["choices"][0]["finish_reason"] == "stop", chunks[-2]
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0, chunks[-1]
        assert len({x["id"] for x in chunks}) == 1

        r = n.post("/v1/chat/completions", {**body, "model": "no-such-agent"}, headers=n.auth())
        e = error_of(r, 404)
        assert e["code"] == "model_not_found" and e["param"] == "model", e
    finally:
        fake.terminate()
        fake.wait()


def test_client_disconnect_stops_the_upstream_call(ctx):
    fake, addr = start_fake(ctx)
    try:
        n = ctx.node(config=router_config(addr))
        need_router(ctx, n)
        st, _ = fake_req(addr, "POST", "/_fake/behaviour", {"model": "*", "token_delay_ms": 100})
        assert st == 200, st
        before = json.loads(fake_req(addr, "GET", "/_fake/stats")[1])["client_disconnects"]
        c, r = open_stream(n, "/v1/chat/completions", {
            "model": "helion", "stream": True,
            "messages": [{"role": "user", "content": " ".join(["energy"] * 200)}]})
        assert r.status == 200, r.status
        first = next(sse_events(r))
        assert first, first
        r.close()
        c.close()  # gone mid-stream
        wait_until(lambda: json.loads(fake_req(addr, "GET", "/_fake/stats")[1])
                   ["client_disconnects"] > before, 10, "the upstream call to be cancelled")
        assert n.get("/health").status == 200
        # The node is still fine and answers the next request in full.
        fake_req(addr, "POST", "/_fake/reset", {})
        r = n.post("/v1/chat/completions", {"model": "helion", "messages": [
            {"role": "user", "content": "one two"}]}, headers=n.auth(), timeout=60)
        assert r.status == 200, r
    finally:
        fake.terminate()
        fake.wait()
