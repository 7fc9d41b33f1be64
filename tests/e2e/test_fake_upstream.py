"""Self-test of tests/fake/fake_upstream: the fake model provider the other
tests and the benchmarks talk to.  It must speak OpenAI's and Ollama's shapes
faithfully and misbehave exactly when asked, or the tests built on it prove
nothing.

The binary comes from $DAGI_FAKE_UPSTREAM, else sits next to the dagi binary
under test (meson builds both into the same directory)."""
import http.client
import json
import os
import signal
import subprocess
import tempfile
import time

import harness
from harness import margin, wait_until


def fake_binary():
    return os.environ.get("DAGI_FAKE_UPSTREAM") or os.path.join(
        os.path.dirname(harness.BIN), "fake_upstream")


class Fake:
    """One fake_upstream process on a free loopback port."""

    def __init__(self, ctx, args=()):
        path = fake_binary()
        if not os.access(path, os.X_OK):
            ctx.skip(f"no fake_upstream binary at {path}")
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([path, "--listen", "127.0.0.1:0", *args],
                                     stdout=subprocess.PIPE, stderr=self.stderr)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("listening "):
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"fake_upstream did not start: {line!r} {self._log()}")
        self.host, port = line.split()[1].rsplit(":", 1)
        self.port = int(port)

    def _log(self):
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop(check=exc[0] is None)

    def stop(self, check=True):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(margin(10))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("fake_upstream ignored SIGTERM")
        self.proc.stdout.close()
        log = self._log()
        self.stderr.close()
        # Under ASan a leak or an error turns into a non-zero exit status.
        if check and self.proc.returncode != 0:
            raise AssertionError(f"fake_upstream exited {self.proc.returncode}: {log}")

    def conn(self, timeout=10):
        return http.client.HTTPConnection(self.host, self.port, timeout=margin(timeout))

    def request(self, method, path, body=None, headers=None, conn=None):
        c = conn or self.conn()
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        data = json.dumps(body) if isinstance(body, (dict, list)) else body
        c.request(method, path, body=data, headers=hdrs)
        r = c.getresponse()
        resp = harness.Response(r.status, dict(r.getheaders()), r.read())
        if conn is None:
            c.close()
        return resp

    def post(self, path, body, headers=None):
        return self.request("POST", path, body, headers)

    def get(self, path, headers=None):
        return self.request("GET", path, headers=headers)

    def stats(self):
        return self.get("/_fake/stats").json()

    def stream(self, path, body, headers=None, timeout=10):
        """Starts a streaming request; returns (connection, response)."""
        c = self.conn(timeout)
        c.request("POST", path, body=json.dumps(body),
                  headers={"Content-Type": "application/json", **(headers or {})})
        return c, c.getresponse()


def read_lines(resp):
    """The non-empty lines of a streamed body, and whether it was cut short."""
    # Not line by line: http.client's readline() over a chunked body ends
    # quietly at a cut, read() raises IncompleteRead with what did arrive.
    try:
        body, cut = resp.read(), False
    except http.client.IncompleteRead as e:
        body, cut = e.partial, True
    return [l for l in body.decode().splitlines() if l], cut


def sse_data(lines):
    assert all(l.startswith("data: ") for l in lines), lines
    return [l[len("data: "):] for l in lines]


def chat(text, **extra):
    return {"model": "gpt-fake", "messages": [{"role": "system", "content": "be brief"},
                                              {"role": "user", "content": text}], **extra}


WEATHER_TOOL = [{"type": "function", "function": {
    "name": "get_weather", "parameters": {"type": "object",
                                          "properties": {"city": {"type": "string"}}}}}]


def test_fake_openai_chat_non_streaming(ctx):
    with Fake(ctx) as f:
        r = f.post("/v1/chat/completions", chat("hello big world"))
        assert r.status == 200, r
        assert r.headers["Content-Type"] == "application/json"
        d = r.json()
        assert d["id"].startswith("chatcmpl-") and d["object"] == "chat.completion"
        assert isinstance(d["created"], int) and d["model"] == "gpt-fake"
        [choice] = d["choices"]
        assert choice["index"] == 0 and choice["finish_reason"] == "stop"
        assert choice["message"] == {"role": "assistant", "content": "echo: hello big world",
                                     "refusal": None}
        assert d["usage"] == {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}

        # A photo in the user message reaches the model; text parts are joined.
        photo = {"model": "vision", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]}
        d = f.post("/v1/chat/completions", photo).json()
        assert d["model"] == "vision"
        assert d["choices"][0]["message"]["content"] == "echo: what is this [image]"

        # max_tokens cuts the answer: finish_reason "length".
        d = f.post("/v1/chat/completions", chat("one two three four", max_tokens=2)).json()
        assert d["choices"][0]["message"]["content"] == "echo: one"
        assert d["choices"][0]["finish_reason"] == "length"

        # Robustness: bad JSON, missing model, unknown path, wrong method.
        r = f.post("/v1/chat/completions", "{not json")
        assert r.status == 400 and r.json()["error"]["type"] == "invalid_request_error"
        r = f.post("/v1/chat/completions", {"messages": []})
        assert r.status == 400 and r.json()["error"]["param"] == "model"
        r = f.get("/v1/nowhere")
        assert r.status == 404 and "message" in r.json()["error"]
        assert f.get("/v1/chat/completions").status == 404

        models = f.get("/v1/models").json()
        assert models["object"] == "list"
        assert models["data"][0]["id"] == "fake-model" and models["data"][0]["object"] == "model"

        e = f.post("/v1/embeddings", {"model": "emb", "input": ["a b", "c"],
                                      "dimensions": 8}).json()
        assert e["object"] == "list" and e["model"] == "emb"
        assert [x["index"] for x in e["data"]] == [0, 1]
        assert all(x["object"] == "embedding" and len(x["embedding"]) == 8 for x in e["data"])
        assert e["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
        again = f.post("/v1/embeddings", {"model": "emb", "input": "a b", "dimensions": 8}).json()
        assert again["data"][0]["embedding"] == e["data"][0]["embedding"]  # deterministic


def test_fake_openai_streaming_done_and_usage(ctx):
    with Fake(ctx) as f:
        c, r = f.stream("/v1/chat/completions",
                        chat("stream me please", stream=True,
                             stream_options={"include_usage": True}))
        assert r.status == 200
        assert r.getheader("Content-Type") == "text/event-stream"
        lines, cut = read_lines(r)
        c.close()
        assert not cut
        data = sse_data(lines)
        assert data[-1] == "[DONE]"
        chunks = [json.loads(x) for x in data[:-1]]
        assert all(ch["object"] == "chat.completion.chunk" and ch["model"] == "gpt-fake"
                   for ch in chunks)
        assert len({ch["id"] for ch in chunks}) == 1
        assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
        text = "".join(ch["choices"][0]["delta"].get("content") or ""
                       for ch in chunks if ch["choices"])
        assert text == "echo: stream me please"
        # one chunk per word
        assert sum(1 for ch in chunks if ch["choices"] and ch["choices"][0]["delta"].get(
            "content")) == 4
        finals = [ch for ch in chunks if ch["choices"] and ch["choices"][0]["finish_reason"]]
        assert len(finals) == 1 and finals[0]["choices"][0]["finish_reason"] == "stop"
        # include_usage: every chunk says usage null, and one last chunk with no choices
        assert all(ch["usage"] is None for ch in chunks[:-1])
        assert chunks[-1]["choices"] == []
        assert chunks[-1]["usage"] == {"prompt_tokens": 5, "completion_tokens": 4,
                                       "total_tokens": 9}

        # Without include_usage: no usage at all.
        c, r = f.stream("/v1/chat/completions", chat("x", stream=True))
        lines, _ = read_lines(r)
        c.close()
        assert sse_data(lines)[-1] == "[DONE]"
        assert all("usage" not in json.loads(x) for x in sse_data(lines)[:-1])


def test_fake_openai_tool_call(ctx):
    with Fake(ctx) as f:
        ask = chat('CALL_TOOL get_weather {"city": "Zürich", "days": 3}', tools=WEATHER_TOOL)
        d = f.post("/v1/chat/completions", ask).json()
        choice = d["choices"][0]
        assert choice["finish_reason"] == "tool_calls"
        msg = choice["message"]
        assert msg["content"] is None
        [call] = msg["tool_calls"]
        assert call["id"].startswith("call_") and call["type"] == "function"
        assert call["function"]["name"] == "get_weather"
        assert json.loads(call["function"]["arguments"]) == {"city": "Zürich", "days": 3}

        # Streamed the way OpenAI does: a first delta with id, type and name,
        # then argument fragments to concatenate.
        c, r = f.stream("/v1/chat/completions", {**ask, "stream": True})
        lines, _ = read_lines(r)
        c.close()
        data = sse_data(lines)
        assert data[-1] == "[DONE]"
        chunks = [json.loads(x) for x in data[:-1]]
        first = chunks[0]["choices"][0]["delta"]["tool_calls"][0]
        assert first["index"] == 0 and first["id"].startswith("call_")
        assert first["type"] == "function" and first["function"]["name"] == "get_weather"
        args = ""
        fragments = 0
        for ch in chunks[1:]:
            for tc in ch["choices"][0]["delta"].get("tool_calls", []):
                assert tc["index"] == 0 and "id" not in tc
                args += tc["function"]["arguments"]
                fragments += 1
        assert fragments > 1
        assert json.loads(args) == {"city": "Zürich", "days": 3}
        assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"

        # Without tools in the request there is no tool call.
        d = f.post("/v1/chat/completions", chat("CALL_TOOL get_weather {}")).json()
        assert d["choices"][0]["message"]["content"] == "echo: CALL_TOOL get_weather {}"

        # The tool's result comes back: the model says it saw it.
        follow = {"model": "gpt-fake", "tools": WEATHER_TOOL, "messages": [
            ask["messages"][1],
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call["id"], "content": "sunny, 21C"}]}
        d = f.post("/v1/chat/completions", follow).json()
        assert d["choices"][0]["message"]["content"] == "TOOL_RESULT_SEEN: sunny, 21C"
        assert d["choices"][0]["finish_reason"] == "stop"

        # The control API can make a model call a tool whatever the text says.
        r = f.post("/_fake/behaviour", {"model": "gpt-fake", "tool_call": {
            "name": "lookup", "arguments": {"q": "dagi"}}})
        assert r.status == 200, r
        d = f.post("/v1/chat/completions", chat("anything", tools=WEATHER_TOOL)).json()
        call = d["choices"][0]["message"]["tool_calls"][0]
        assert call["function"]["name"] == "lookup"
        assert json.loads(call["function"]["arguments"]) == {"q": "dagi"}
        # ... but not after the tool result came back (no endless loop).
        d = f.post("/v1/chat/completions", follow).json()
        assert d["choices"][0]["message"]["content"] == "TOOL_RESULT_SEEN: sunny, 21C"


def test_fake_ollama_chat_load_unload_ps(ctx):
    with Fake(ctx, args=("--models", "llama3.2:latest,nomic-embed-text")) as f:
        tags = f.get("/api/tags").json()
        assert [m["name"] for m in tags["models"]] == ["llama3.2:latest", "nomic-embed-text"]
        assert all({"model", "size", "digest", "details", "modified_at"} <= set(m)
                   for m in tags["models"])
        assert f.get("/api/ps").json() == {"models": []}

        # Load: empty messages.
        d = f.post("/api/chat", {"model": "llama3.2:latest", "messages": [],
                                 "keep_alive": "10m"}).json()
        assert d["done"] is True and d["done_reason"] == "load"
        assert d["message"] == {"role": "assistant", "content": ""}
        ps = f.get("/api/ps").json()["models"]
        assert [m["name"] for m in ps] == ["llama3.2:latest"]
        assert "expires_at" in ps[0] and "size_vram" in ps[0]

        # Streaming chat (the default): NDJSON, one word per line, then done.
        c, r = f.stream("/api/chat", {"model": "llama3.2:latest", "messages": [
            {"role": "user", "content": "look at this", "images": ["iVBORw0KGgo="]}]})
        assert r.status == 200
        assert r.getheader("Content-Type") == "application/x-ndjson"
        lines, cut = read_lines(r)
        c.close()
        assert not cut
        objs = [json.loads(l) for l in lines]
        assert all(o["model"] == "llama3.2:latest" and "created_at" in o for o in objs)
        assert [o["done"] for o in objs] == [False] * 5 + [True]
        assert "".join(o["message"]["content"] for o in objs) == "echo: look at this [image]"
        last = objs[-1]
        assert last["done_reason"] == "stop"
        assert last["prompt_eval_count"] == 3 and last["eval_count"] == 5
        for k in ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration"):
            assert isinstance(last[k], int)

        # stream: false - one object.
        d = f.post("/api/chat", {"model": "llama3.2:latest", "stream": False,
                                 "messages": [{"role": "user", "content": "hi"}]}).json()
        assert d["done"] is True and d["message"]["content"] == "echo: hi"
        assert d["eval_count"] == 2

        # Tool calls, Ollama style: arguments are an object.
        d = f.post("/api/chat", {"model": "llama3.2:latest", "stream": False,
                                 "tools": WEATHER_TOOL, "messages": [
                                     {"role": "user",
                                      "content": 'CALL_TOOL get_weather {"city": "Oslo"}'}]}).json()
        assert d["message"]["tool_calls"] == [
            {"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]

        # Unload: keep_alive 0.
        d = f.post("/api/chat", {"model": "llama3.2:latest", "messages": [],
                                 "keep_alive": 0}).json()
        assert d["done_reason"] == "unload"
        assert f.get("/api/ps").json() == {"models": []}

        # A short keep_alive runs out.
        f.post("/api/chat", {"model": "nomic-embed-text", "messages": [], "keep_alive": "200ms"})
        assert [m["name"] for m in f.get("/api/ps").json()["models"]] == ["nomic-embed-text"]
        wait_until(lambda: f.get("/api/ps").json()["models"] == [], 5, "keep_alive expiry")

        e = f.post("/api/embed", {"model": "nomic-embed-text", "input": ["a", "b"]}).json()
        assert len(e["embeddings"]) == 2 and len(e["embeddings"][0]) == 16

        st = f.stats()
        assert st["loads"] == {"llama3.2:latest": 1, "nomic-embed-text": 1}
        assert st["unloads"] == {"llama3.2:latest": 1}
        assert st["loaded"] == ["nomic-embed-text"]  # the embedding call loaded it again

        r = f.post("/api/chat", {"model": "x", "messages": [], "keep_alive": "soon"})
        assert r.status == 400 and isinstance(r.json()["error"], str)


def test_fake_behaviour_overrides(ctx):
    with Fake(ctx) as f:
        # Latency before the first byte, token delay between tokens.
        t0 = time.monotonic()
        r = f.post("/v1/chat/completions", chat("a"), headers={"X-Fake-Latency-Ms": "300"})
        assert r.status == 200 and time.monotonic() - t0 >= 0.3
        t0 = time.monotonic()
        c, r = f.stream("/v1/chat/completions", chat("a b c d", stream=True),
                        headers={"X-Fake-Token-Delay-Ms": "100"})
        lines, _ = read_lines(r)
        c.close()
        assert sse_data(lines)[-1] == "[DONE]"
        assert time.monotonic() - t0 >= 0.4  # 5 tokens, 4 gaps

        # An error status in the provider's own shape.
        r = f.post("/v1/chat/completions", chat("a"), headers={"X-Fake-Status": "429"})
        assert r.status == 429 and r.headers.get("Retry-After") == "1"
        err = r.json()["error"]
        assert err["code"] == "rate_limit_exceeded" and err["message"]
        assert {"type", "param"} <= set(err)
        r = f.post("/api/chat", {"model": "m", "messages": [{"role": "user", "content": "a"}]},
                   headers={"X-Fake-Status": "503"})
        assert r.status == 503 and isinstance(r.json()["error"], str)
        r = f.post("/v1/chat/completions", chat("a"), headers={"X-Fake-Status": "soon"})
        assert r.status == 400

        # Die after two tokens: the stream is cut, no [DONE].
        c, r = f.stream("/v1/chat/completions", chat("one two three four", stream=True),
                        headers={"X-Fake-Die-After-Tokens": "2"})
        lines, cut = read_lines(r)
        c.close()
        assert cut
        data = sse_data(lines)
        assert "[DONE]" not in data
        assert [json.loads(x)["choices"][0]["delta"].get("content") for x in data] == [
            "", "echo:", " one"]
        # Die before the first token of a non-streamed answer: no response at all.
        try:
            f.post("/v1/chat/completions", chat("x"), headers={"X-Fake-Die-After-Tokens": "0"})
            raise AssertionError("expected the connection to be cut")
        except (http.client.RemoteDisconnected, ConnectionError):
            pass

        # Per model through the control API: twice 500, then fine again.
        r = f.post("/_fake/behaviour", {"model": "flaky", "status": 500, "times": 2})
        assert r.status == 200
        flaky = {"model": "flaky", "messages": [{"role": "user", "content": "hi"}]}
        assert f.post("/v1/chat/completions", flaky).status == 500
        assert f.post("/v1/chat/completions", flaky).status == 500
        assert f.post("/v1/chat/completions", flaky).status == 200
        # Other models are untouched; "*" reaches every model; headers win.
        f.post("/_fake/behaviour", {"model": "*", "latency_ms": 250})
        t0 = time.monotonic()
        assert f.post("/v1/chat/completions", flaky).status == 200
        assert time.monotonic() - t0 >= 0.25
        t0 = time.monotonic()
        f.post("/v1/chat/completions", flaky, headers={"X-Fake-Latency-Ms": "0"})
        assert time.monotonic() - t0 < 0.25
        f.post("/_fake/behaviour", {"model": "slow", "die_after_tokens": 1})
        c, r = f.stream("/api/chat", {"model": "slow", "messages": [
            {"role": "user", "content": "a b c"}]})
        lines, cut = read_lines(r)
        c.close()
        assert cut and [json.loads(l)["message"]["content"] for l in lines] == ["echo:"]

        assert f.post("/_fake/behaviour", {"model": "x", "latncy_ms": 5}).status == 400
        assert f.post("/_fake/behaviour", {"model": "x", "status": 200}).status == 400
        assert f.post("/_fake/reset", {}).status == 200
        t0 = time.monotonic()
        f.post("/v1/chat/completions", flaky)
        assert time.monotonic() - t0 < 0.25
        assert f.stats()["behaviours"] == {}


def test_fake_api_key(ctx):
    with Fake(ctx, args=("--api-key", "sk-test")) as f:
        r = f.post("/v1/chat/completions", chat("a"))
        assert r.status == 401
        err = r.json()["error"]
        assert err["type"] == "invalid_request_error" and err["message"]
        r = f.post("/v1/chat/completions", chat("a"), headers={"Authorization": "Bearer nope"})
        assert r.status == 401 and r.json()["error"]["code"] == "invalid_api_key"
        assert f.get("/v1/models").status == 401
        r = f.post("/v1/chat/completions", chat("a"), headers={"Authorization": "Bearer sk-test"})
        assert r.status == 200
        # The control API needs no key.
        assert f.stats()["requests"] == 4


def test_fake_stats_count_client_disconnect(ctx):
    with Fake(ctx, args=("--max-body", "4096")) as f:
        f.post("/v1/chat/completions", chat("first"))
        c, r = f.stream("/v1/chat/completions", chat(" ".join(["w"] * 100), stream=True),
                        headers={"X-Fake-Token-Delay-Ms": "50"})
        assert r.status == 200
        r.readline()
        wait_until(lambda: f.stats()["active_streams"] == 1, 5, "an active stream")
        r.close()
        c.close()  # the client goes away mid-stream
        st = wait_until(lambda: (lambda s: s if s["client_disconnects"] == 1 else None)(
            f.stats()), 5, "the disconnect to be counted")
        assert st["active_streams"] == 0
        assert st["requests"] == 2
        assert st["by_path"] == {"/v1/chat/completions": 2}
        assert st["by_model"] == {"gpt-fake": 2}
        assert st["last_request"]["stream"] is True
        assert st["last_request"]["messages"][1]["content"].startswith("w w w")

        # A stream that runs to its end and one we cut are not client disconnects.
        c, r = f.stream("/v1/chat/completions", chat("a b", stream=True))
        read_lines(r)
        c.close()
        c, r = f.stream("/v1/chat/completions", chat("a b", stream=True),
                        headers={"X-Fake-Die-After-Tokens": "1"})
        read_lines(r)
        c.close()
        st = f.stats()
        assert st["client_disconnects"] == 1 and st["active_streams"] == 0

        # The body cap.
        r = f.post("/v1/chat/completions", chat("x" * 5000))
        assert r.status == 413

        assert f.post("/_fake/reset", {}).status == 200
        st = f.stats()
        assert st["requests"] == 0 and st["by_path"] == {} and st["last_request"] is None
