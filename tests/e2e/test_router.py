"""The router role through the real binary: dagi.router.infer with the sample
agent registry, every profile model served by the fake OpenAI upstream, and
the fallbacks when the upstream misbehaves."""
import http.client
import json
import os
import tempfile

from test_swapper import start_fake

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = ["qwen3-8b", "qwen3-vl-8b", "qwen2.5-3b", "qwen2.5-coder-7b", "mistral-7b",
          "deepseek-chat"]
# deepseek-chat is helion's reasoning model: it is chosen only when its key
# variable is set, so the tests leave it unset unless they want reasoning.
KEY_ENV = "DAGI_TEST_ROUTER_REASONING_KEY"


def config(addr, routing=None):
    models = "".join(f"""
    - id: {m}
      provider: openai
      base_url: http://{addr}/v1
      capabilities: [chat, vision, tools]
""" + (f"      api_key_env: {KEY_ENV}\n" if m == "deepseek-chat" else "") for m in MODELS)
    text = f"""
swapper:
  retries: 0
  models:{models}
router:
  registry: {REPO}/config/agent_registry.yml
  prompts_dir: {REPO}/config/prompts
"""
    if routing:
        text += f"  routing: {routing}\n"
    # The sample policy: Telegram users and key holders may use the agents.
    return text + f"registry:\n  policies: {REPO}/config/policy.yml\n"


def behave(addr, **kw):
    c = http.client.HTTPConnection(*addr.rsplit(":", 1), timeout=10)
    c.request("POST", "/_fake/behaviour", body=json.dumps(kw),
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    c.close()
    assert r.status == 200, r.status


def ask(node, **data):
    data.setdefault("agent_id", "helion")
    body = {"subject": "dagi.router.infer", "stream": True, "timeout_ms": 30000, "data": data}
    r = node.post("/v1/test/bus/request", body, headers=node.auth(), timeout=60)
    assert r.status == 200, r
    return r.json()


def final_of(r):
    assert r["ok"], r
    return json.loads(r["result"])


class Setup:
    def __init__(self, ctx, routing=None, env=None):
        self.fake, self.addr = start_fake(ctx)
        try:
            self.node = ctx.node(config=config(self.addr, routing), env=env)
        except BaseException:
            self.close()
            raise

    def close(self):
        self.fake.terminate()
        self.fake.wait()


def test_helion_answers_with_its_default_model(ctx):
    s = Setup(ctx)
    try:
        r = ask(s.node, message="hello there")
        f = final_of(r)
        assert f["model"] == "qwen3-8b" and f["backend"] == "openai", f
        assert f["response"] == "echo: hello there", f
        assert r["chunks"] >= 2, r
        assert f["policy"] == "FULL" and f["reason"] == "no_chat", f
        assert f["tokens_used"] == f["usage"]["prompt_tokens"] + f["usage"]["completion_tokens"]
        # A private chat is FULL outside helion's quiet hours (23:00-07:00 Kyiv).
        from test_telegram import kyiv_offset_ms
        s.node.post("/v1/test/clock", {"offset_ms": kyiv_offset_ms(12)}, headers=s.node.auth())
        f = final_of(ask(s.node, message="hi", chat={"id": "1", "type": "private"}))
        assert f["policy"] == "FULL" and f["reason"] == "private", f
    finally:
        s.close()


def test_helion_answers_via_builtin_when_every_upstream_fails(ctx):
    s = Setup(ctx)
    try:
        behave(s.addr, model="*", status=503)
        f = final_of(ask(s.node, message="привіт"))
        assert f["model"] == "builtin" and f["backend"] == "builtin", f
        assert f["response"], f
        m = s.node.get("/metrics").body.decode()
        assert 'agent_fallbacks_total{agent_id="helion"}' in m, m
    finally:
        s.close()


def test_unknown_agent_is_not_found(ctx):
    s = Setup(ctx)
    try:
        r = ask(s.node, agent_id="nobody", message="hi")
        assert not r["ok"] and r["error"] == "not_found", r
    finally:
        s.close()


def test_a_photo_goes_to_the_vision_model(ctx):
    s = Setup(ctx)
    try:
        f = final_of(ask(s.node, message="what is this",
                         images=["data:image/png;base64,iVBORw0KGgo="]))
        assert f["model"] == "qwen3-vl-8b", f
        assert f["response"].endswith("[image]"), f
    finally:
        s.close()


def test_upstream_500_falls_back(ctx):
    s = Setup(ctx)
    try:
        behave(s.addr, model="qwen3-8b", status=500)
        f = final_of(ask(s.node, message="one two"))
        assert f["model"] == "qwen2.5-3b", f
        assert f["response"] == "echo: one two", f
    finally:
        s.close()


def test_death_before_the_first_token_falls_back(ctx):
    s = Setup(ctx)
    try:
        behave(s.addr, model="qwen3-8b", die_after_tokens=0)
        f = final_of(ask(s.node, message="one two three"))
        assert f["model"] == "qwen2.5-3b", f
    finally:
        s.close()


def test_death_after_the_first_token_is_an_error(ctx):
    s = Setup(ctx)
    try:
        behave(s.addr, model="qwen3-8b", die_after_tokens=1)
        r = ask(s.node, message="one two three four")
        assert not r["ok"] and r["error"], r
        assert r.get("result") in (None, ""), r
    finally:
        s.close()


def test_a_routing_rule_overrides_the_profile(ctx):
    fake, addr = start_fake(ctx)
    try:
        path = os.path.join(tempfile.mkdtemp(prefix="dagi-e2e-routing-"), "routing.yml")
        with open(path, "w") as f:
            f.write("""version: 1
rules:
  - name: code_to_coder
    priority: 10
    when: {task_type: [code]}
    use: {model: qwen2.5-coder-7b}
""")
        n = ctx.node(config=config(addr, routing=path))
        f = final_of(ask(n, message="write a loop", task_type="code"))
        assert f["model"] == "qwen2.5-coder-7b", f
        f = final_of(ask(n, message="just chat"))
        assert f["model"] == "qwen3-8b", f
    finally:
        fake.terminate()
        fake.wait()


def test_reasoning_model_needs_its_key(ctx):
    fake, addr = start_fake(ctx)
    try:
        n = ctx.node(config=config(addr), env={KEY_ENV: "sk-test"})
        f = final_of(ask(n, message="think"))
        assert f["model"] == "deepseek-chat", f
    finally:
        fake.terminate()
        fake.wait()


def test_caller_tools_come_back_as_tool_calls(ctx):
    s = Setup(ctx)
    try:
        tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object", "properties": {"city": {"type": "string"}}}}}]
        f = final_of(ask(s.node, message='CALL_TOOL get_weather {"city": "Oslo"}', tools=tools))
        assert f["finish_reason"] == "tool_calls", f
        assert f["tool_calls"][0]["function"]["name"] == "get_weather", f
    finally:
        s.close()


def test_agents_are_listed(ctx):
    s = Setup(ctx)
    try:
        body = {"subject": "dagi.router.agents", "data": {}}
        r = s.node.post("/v1/test/bus/request", body, headers=s.node.auth(), timeout=30).json()
        assert r["ok"], r
        ids = [a["id"] for a in json.loads(r["result"])["agents"]]
        assert "helion" in ids and "daarwizz" in ids, ids
    finally:
        s.close()


class ToolEndpoint:
    """A tiny HTTP tool: records every call's body and answers {"temp": 21}."""

    def __init__(self):
        import http.server
        import threading
        calls = self.calls = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                calls.append((self.path, self.rfile.read(n).decode()))
                body = b'{"temp": 21}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def tool_config(addr, port):
    """A registry of one agent with a weather tool it may call and an rm_rf
    tool it may not, in the test's own temp dir."""
    d = tempfile.mkdtemp(prefix="dagi-e2e-tools-")
    with open(os.path.join(d, "tooly.md"), "w") as f:
        f.write("You are Tooly, a test agent with tools.\n")
    with open(os.path.join(d, "registry.yml"), "w") as f:
        f.write(f"""version: 1
agents:
  - id: tooly
    name: Tooly
    role: Test agent with server-side tools.
    system_prompt: {{file: tooly.md, version: "1"}}
    model: {{default: qwen3-8b, fallbacks: [builtin]}}
    tools:
      - name: weather
        description: The weather in a city.
        url: http://127.0.0.1:{port}/weather
        parameters_json: '{{"type":"object","properties":{{"city":{{"type":"string"}}}}}}'
      - name: rm_rf
        description: Deletes everything.
        url: http://127.0.0.1:{port}/rm_rf
    allowed_tools: [weather]
""")
    text = config(addr)
    text = text.replace(f"{REPO}/config/agent_registry.yml", os.path.join(d, "registry.yml"))
    return text.replace(f"{REPO}/config/prompts", d)


class ToolSetup:
    def __init__(self, ctx):
        self.tool = ToolEndpoint()
        self.fake, self.addr = start_fake(ctx)
        try:
            self.node = ctx.node(config=tool_config(self.addr, self.tool.port))
        except BaseException:
            self.close()
            raise

    def close(self):
        self.fake.terminate()
        self.fake.wait()
        self.tool.close()


def test_agent_tools_run_on_the_server(ctx):
    s = ToolSetup(ctx)
    try:
        r = ask(s.node, agent_id="tooly", message='CALL_TOOL weather {"city":"Kyiv"}')
        f = final_of(r)
        assert len(s.tool.calls) == 1, s.tool.calls
        path, body = s.tool.calls[0]
        assert path == "/weather" and json.loads(body) == {"city": "Kyiv"}, s.tool.calls
        assert "TOOL_RESULT_SEEN" in f["response"] and "21" in f["response"], f
        assert "tool_calls" not in f, f
        assert r["chunks"] >= 2, r
        m = s.node.get("/metrics").body.decode()
        assert ('agent_tool_calls_total{agent_id="tooly",tool="weather",result="ok"} 1'
                in m), m
    finally:
        s.close()


def test_agent_tools_not_allowed_are_refused(ctx):
    s = ToolSetup(ctx)
    try:
        f = final_of(ask(s.node, agent_id="tooly", message="CALL_TOOL rm_rf {}"))
        assert "tool rm_rf is not allowed for this agent" in f["response"], f
        f = final_of(ask(s.node, agent_id="tooly", message="CALL_TOOL shell {}"))
        assert "tool shell is not allowed for this agent" in f["response"], f
        assert s.tool.calls == [], s.tool.calls
        m = s.node.get("/metrics").body.decode()
        assert ('agent_tool_calls_total{agent_id="tooly",tool="rm_rf",result="refused"} 1'
                in m), m
        assert ('agent_tool_calls_total{agent_id="tooly",tool="undeclared",result="refused"} 1'
                in m), m
    finally:
        s.close()


def test_agent_tools_stop_after_max_tool_rounds(ctx):
    tool = ToolEndpoint()
    fake, addr = start_fake(ctx)
    try:
        n = ctx.node(config=tool_config(addr, tool.port).replace(
            "router:\n", "router:\n  max_tool_rounds: 0\n", 1))
        r = ask(n, agent_id="tooly", message='CALL_TOOL weather {"city":"Kyiv"}')
        assert not r["ok"] and "rounds" in (r.get("message") or json.dumps(r)), r
        assert tool.calls == [], tool.calls
    finally:
        fake.terminate()
        fake.wait()
        tool.close()
