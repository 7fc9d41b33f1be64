"""The swapper role through the real binary: the bus subjects and the operator
routes, with the offline builtin provider and the fake OpenAI/Ollama upstream:
lazy loads under the memory budget, shared first loads, and embeddings through
the gateway's OpenAI-compatible /v1/embeddings."""
import http.client
import json
import math
import os
import subprocess
import threading

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


def fake_call(addr, method, path, body=None):
    """The fake's control API (no key needed): (status, parsed JSON)."""
    host, port = addr.rsplit(":", 1)
    c = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        c.request(method, path, body=json.dumps(body) if body is not None else None,
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, json.loads(r.read() or b"null")
    finally:
        c.close()


def fake_stats(addr):
    status, stats = fake_call(addr, "GET", "/_fake/stats")
    assert status == 200, stats
    return stats


def ollama_models(addr, *ids, memory_mb=1000, capabilities="[chat]"):
    return "".join(f"""    - {{id: {m}, provider: ollama, base_url: 'http://{addr}', memory_mb: {memory_mb},
        capabilities: {capabilities}}}
""" for m in ids)


def swapper_status(n):
    r = n.get("/v1/swapper/status", headers=n.auth())
    assert r.status == 200, r
    return r.json()


def test_ollama_lru_unloads_the_least_recently_used(ctx):
    fake, addr = start_fake(ctx)
    try:
        n = ctx.node(config=f"""
swapper:
  vram_budget_mb: 2000
  models:
{ollama_models(addr, "a", "b", "c")}""")
        for model in ("a", "b", "c"):
            r = infer(n, model, f"hello {model}", stream=False)
            assert r["ok"], r
            assert json.loads(r["result"])["backend"] == "ollama"
        # Room for two: loading c first unloaded a, the least recently used,
        # with keep_alive 0 - and nothing else.
        stats = fake_stats(addr)
        assert stats["loads"] == {"a": 1, "b": 1, "c": 1}, stats
        assert stats["unloads"] == {"a": 1}, stats
        assert "a" not in stats["loaded"] and {"b", "c"} <= set(stats["loaded"]), stats
        status = swapper_status(n)
        assert sorted(status["loaded"]) == ["b", "c"], status
        assert status["used_mb"] == 2000 and status["budget_mb"] == 2000, status
        models = {m["id"]: m for m in n.get("/v1/swapper/models", headers=n.auth()).json()["models"]}
        assert models["a"]["state"] == "unloaded" and models["c"]["state"] == "loaded", models
    finally:
        fake.terminate()
        fake.wait()


def test_ollama_concurrent_first_requests_share_one_load(ctx):
    fake, addr = start_fake(ctx)
    try:
        n = ctx.node(config=f"""
swapper:
  models:
{ollama_models(addr, "d")}""")
        # A slow load, so that all ten requests arrive while it runs.
        status, _ = fake_call(addr, "POST", "/_fake/behaviour", {"model": "d", "latency_ms": 400})
        assert status == 200
        results = [None] * 10

        def ask(i):
            results[i] = infer(n, "d", f"question {i}", stream=False)

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=harness.margin(60))
        assert all(r and r["ok"] for r in results), results
        assert fake_stats(addr)["loads"] == {"d": 1}, fake_stats(addr)
        assert swapper_status(n)["loaded"] == ["d"]
    finally:
        fake.terminate()
        fake.wait()


def embeddings(n, body, auth=True):
    return n.post("/v1/embeddings", body, headers=n.auth() if auth else None, timeout=60)


def openai_error(r, status, param=None):
    assert r.status == status, r
    e = r.json()["error"]
    assert set(e) == {"message", "type", "param", "code"}, e
    assert e["type"] == "invalid_request_error" and e["message"], e
    if param:
        assert e["param"] == param, e
    return e


def norm(v):
    return math.sqrt(sum(x * x for x in v))


def test_embeddings_through_the_openai_route(ctx):
    fake, addr = start_fake(ctx)
    try:
        n = ctx.node(config=f"""
swapper:
  vram_budget_mb: 4000
  models:
    - {{id: fake-embed, provider: openai, base_url: 'http://{addr}/v1', capabilities: [embeddings]}}
    - {{id: chat-only, provider: openai, base_url: 'http://{addr}/v1', capabilities: [chat]}}
{ollama_models(addr, "nomic", capabilities="[embeddings]")}{ollama_models(addr, "both", capabilities="[chat, embeddings]")}""")
        # An OpenAI-compatible upstream: OpenAI's shape, in input order.
        r = embeddings(n, {"model": "fake-embed", "input": ["hello world", "second text"]})
        assert r.status == 200, r
        doc = r.json()
        assert doc["object"] == "list" and doc["model"] == "fake-embed", doc
        assert [d["index"] for d in doc["data"]] == [0, 1]
        assert all(d["object"] == "embedding" and len(d["embedding"]) == 16 for d in doc["data"])
        assert doc["usage"]["prompt_tokens"] > 0
        assert doc["usage"]["total_tokens"] == doc["usage"]["prompt_tokens"]
        alone = embeddings(n, {"model": "fake-embed", "input": "second text"}).json()
        assert alone["data"][0]["embedding"] == doc["data"][1]["embedding"]
        r = embeddings(n, {"model": "fake-embed", "input": "x", "dimensions": 8,
                           "encoding_format": "float"})
        assert r.status == 200 and len(r.json()["data"][0]["embedding"]) == 8, r

        # A local Ollama model that only embeds: loaded lazily, through
        # /api/embed (one empty embed), once.
        assert "nomic" not in fake_stats(addr)["loaded"]
        r = embeddings(n, {"model": "nomic", "input": ["a", "b", "c"]})
        assert r.status == 200 and len(r.json()["data"]) == 3, r
        stats = fake_stats(addr)
        assert stats["by_path"].get("/api/embed") == 2, stats  # the load, the embedding
        assert "nomic" in stats["loaded"], stats
        assert "nomic" in swapper_status(n)["loaded"]
        assert embeddings(n, {"model": "nomic", "input": "again"}).status == 200
        assert fake_stats(addr)["by_path"]["/api/embed"] == 3  # no second load
        # One that chats too loads the usual way: one load at the fake.
        r = embeddings(n, {"model": "both", "input": "hi"})
        assert r.status == 200, r
        assert fake_stats(addr)["loads"] == {"both": 1}

        # builtin: offline, deterministic, unit length.
        b1 = embeddings(n, {"model": "builtin", "input": "the quick brown fox"}).json()
        b2 = embeddings(n, {"model": "builtin", "input": ["the quick brown fox"]}).json()
        v = b1["data"][0]["embedding"]
        assert len(v) == 256 and abs(norm(v) - 1) < 1e-6, b1  # 9 digits on the wire
        assert v == b2["data"][0]["embedding"]
        assert b1["usage"]["prompt_tokens"] == 4

        # Bad input: OpenAI's error shape.
        openai_error(embeddings(n, {"model": "builtin", "input": []}), 400, "input")
        openai_error(embeddings(n, {"model": "builtin", "input": [1, 2, 3]}), 400, "input")
        openai_error(embeddings(n, {"model": "builtin", "input": ["ok", ""]}), 400, "input")
        openai_error(embeddings(n, {"model": "builtin"}), 400, "input")
        openai_error(embeddings(n, {"input": "x"}), 400, "model")
        openai_error(embeddings(n, {"model": "builtin", "input": "x", "encoding_format": "base64"}),
                     400, "encoding_format")
        openai_error(embeddings(n, {"model": "builtin", "input": "x", "dimensions": 0}), 400,
                     "dimensions")
        e = openai_error(embeddings(n, {"model": "builtin", "input": ["w"] * 257}), 400)
        assert "at most 256" in e["message"], e
        e = openai_error(embeddings(n, {"model": "builtin", "input": "x" * 70000}), 413)
        assert "65536" in e["message"], e
        e = openai_error(embeddings(n, {"model": "no-such-model", "input": "x"}), 404, "model")
        assert e["code"] == "model_not_found", e
        # A chat model does not embed.
        e = openai_error(embeddings(n, {"model": "chat-only", "input": "x"}), 400)
        assert "embeddings" in e["message"], e
        assert fake_stats(addr)["by_model"].get("chat-only") is None
        # The same gate as the other /v1 routes.
        assert embeddings(n, {"model": "builtin", "input": "x"}, auth=False).status == 401
    finally:
        fake.terminate()
        fake.wait()


def test_embed_verb_on_the_bus(ctx):
    n = ctx.node()
    body = {"subject": "dagi.swapper.embed", "timeout_ms": 20000,
            "data": {"model": "builtin", "input": ["one", "two"], "dimensions": 32}}
    r = n.post("/v1/test/bus/request", body, headers=n.auth(), timeout=60).json()
    assert r["ok"], r
    result = json.loads(r["result"])
    assert result["model"] == "builtin" and result["backend"] == "builtin", result
    assert [len(v) for v in result["embeddings"]] == [32, 32]
    assert result["usage"] == {"prompt_tokens": 2}
    body["data"] = {"model": "nope", "input": "x"}
    r = n.post("/v1/test/bus/request", body, headers=n.auth(), timeout=60).json()
    assert not r["ok"] and r["error"] == "not_found", r
    body["data"] = {"model": "builtin"}
    r = n.post("/v1/test/bus/request", body, headers=n.auth(), timeout=60).json()
    assert not r["ok"] and r["error"] == "invalid", r


def test_an_embedding_model_does_not_chat(ctx):
    n = ctx.node(config="""
swapper:
  models:
    - {id: embed-only, provider: openai, base_url: 'http://127.0.0.1:9/v1', capabilities: [embeddings]}
""")
    body = {"subject": "dagi.swapper.infer", "timeout_ms": 20000,
            "data": {"model": "embed-only", "messages": [{"role": "user", "content": "hi"}]}}
    r = n.post("/v1/test/bus/request", body, headers=n.auth(), timeout=60).json()
    assert not r["ok"] and r["error"] == "invalid" and "does not chat" in r["message"], r
