"""Policy decisions on the request path: the router asks for agent use, the
mode and each tool call, from the control plane's bundle, on every route
that reaches an agent (the agents API, the OpenAI API, /route, signed
webhooks, Telegram)."""
import json
import os
import tempfile

from harness import wait_until
from test_gate import sign_hook
from test_router import config, tool_config, ToolEndpoint, REPO
from test_swapper import start_fake

POLICY = """
version: 1
roles:
  - id: admin
    allow: ["*"]
  - id: dev
    allow: [agent.use, mode.team, model.use]
  - id: tools
    allow: ["agent.tool.*"]
  - id: no_druid
    deny_on: [{action: agent.use, resources: [druid]}]
  - id: hooks
    allow: [agent.use]
bindings:
  - {subject: admin, roles: [admin]}
  - {subject: "role:dev", roles: [dev]}
  - {subject: "role:toolsmith", roles: [dev, tools]}
  - {subject: "role:nodruid", roles: [dev, no_druid]}
plans:
  - {id: all, agents: ["*"], models: ["*"], max_mode: team}
  - {id: druid_only, agents: [druid], models: ["*"], max_mode: team}
teams:
  - {id: "*", plan: all}
  - {id: greens, plan: druid_only}
"""


def policy_node(ctx, policy=POLICY, base=None, extra=""):
    fake, addr = start_fake(ctx)
    d = tempfile.mkdtemp(prefix="dagi-e2e-policy-")
    path = os.path.join(d, "policy.yml")
    with open(path, "w") as f:
        f.write(policy)
    text = (base or config(addr)).replace(f"policies: {REPO}/config/policy.yml",
                                          f"policies: {path}")
    if "policies:" not in text:
        text += f"registry:\n  policies: {path}\n"
    n = ctx.node(config=text + extra, env={"DAGI_TEST_HOOK_SECRET": "hook-secret-0123456789"})
    n.fake = fake
    return n


def key(n, user, roles=(), team=None):
    body = {"user_id": user, "roles": list(roles)}
    if team:
        body["team"] = team
    r = n.post("/v1/admin/keys", body, headers=n.auth())
    assert r.status == 201, r
    return {"Authorization": "Bearer " + r.json()["key"]}


def infer(n, headers, agent="helion", **body):
    body.setdefault("prompt", "hello")
    return n.post(f"/v1/agents/{agent}/infer", body, headers=headers, timeout=60)


def close(n):
    n.fake.terminate()
    n.fake.wait()


def test_default_deny_and_a_role_grant(ctx):
    n = policy_node(ctx)
    try:
        # No binding for a key without roles: deny by default.
        r = infer(n, key(n, "nobody"))
        assert r.status == 403, r
        assert "no_grant" in r.json()["error"]["message"], r.json()
        # The role dev grants agent.use.
        assert infer(n, key(n, "olena", ["dev"])).status == 200
        # Counted and audited (the principal pseudonymised).
        m = n.get("/metrics").body.decode()
        assert 'agent_denies_total{agent_id="helion",action="agent",reason="no_grant"} 1' in m
        assert 'pdp_decisions_total{action_prefix="agent",decision="deny"}' in m

        def audited():
            r = n.get("/v1/audit?service=router&action=deny", headers=n.auth())
            return r.status == 200 and r.json().get("records")
        recs = wait_until(audited, 10, "the deny in the audit log")
        assert recs[0]["decision"] == "deny" and recs[0]["actor"].startswith("p_"), recs[0]
        assert "nobody" not in json.dumps(recs)
    finally:
        close(n)


def test_an_explicit_deny_beats_a_grant(ctx):
    n = policy_node(ctx)
    try:
        h = key(n, "petro", ["nodruid"])
        assert infer(n, h, agent="helion").status == 200
        r = infer(n, h, agent="druid")
        assert r.status == 403 and "explicit_deny" in r.json()["error"]["message"], r.json()
    finally:
        close(n)


def test_a_team_outside_its_entitlements_cannot_use_the_agent(ctx):
    n = policy_node(ctx)
    try:
        h = key(n, "ivan", ["dev"], team="greens")
        r = infer(n, h, agent="helion")
        assert r.status == 403 and "not_entitled" in r.json()["error"]["message"], r.json()
        assert infer(n, h, agent="druid").status == 200
        # A mode above the team's: refused, not lowered.
        r = infer(n, h, agent="druid", mode="confidential")
        assert r.status == 403 and "mode confidential" in r.json()["error"]["message"], r.json()
    finally:
        close(n)


def test_every_route_enforces_it(ctx):
    n = policy_node(ctx, extra="auth:\n  hooks:\n    - {agent: helion, secret_env: "
                             "DAGI_TEST_HOOK_SECRET}\n")
    try:
        h = key(n, "nobody")
        r = n.post("/v1/chat/completions", {"model": "helion", "messages": [
            {"role": "user", "content": "hi"}]}, headers=h, timeout=60)
        assert r.status == 403, r
        assert r.json()["error"]["type"] == "permission_error", r.json()
        r = n.post("/route", {"agent": "helion", "message": "hi"}, headers=h, timeout=60)
        assert r.status == 403, r
        # A signed webhook: its principal hook:helion has no binding here.
        body = json.dumps({"type": "ping", "text": "hi"}).encode()
        r = n.request("POST", "/v1/hooks/helion", body,
                      headers=sign_hook("hook-secret-0123456789", body), timeout=60)
        assert r.status == 403, r
        # The same routes for a caller the policy grants.
        ok = key(n, "olena", ["dev"])
        r = n.post("/v1/chat/completions", {"model": "helion", "messages": [
            {"role": "user", "content": "hi"}]}, headers=ok, timeout=60)
        assert r.status == 200, r
        r = n.post("/route", {"agent": "helion", "message": "hi"}, headers=ok, timeout=60)
        assert r.status == 200, r
    finally:
        close(n)


def test_a_tool_call_without_its_permission_is_refused(ctx):
    tool = ToolEndpoint()
    fake, addr = start_fake(ctx)
    try:
        d = tempfile.mkdtemp(prefix="dagi-e2e-policy-")
        path = os.path.join(d, "policy.yml")
        with open(path, "w") as f:
            # The bundle names only agents of the registry it runs with.
            f.write(POLICY.replace("druid", "tooly"))
        n = ctx.node(config=tool_config(addr, tool.port).replace(
            f"policies: {REPO}/config/policy.yml", f"policies: {path}"))
        ask = {"prompt": 'CALL_TOOL weather {"city":"Kyiv"}'}
        # role dev: may use the agent, not its tools.
        r = n.post("/v1/agents/tooly/infer", ask, headers=key(n, "olena", ["dev"]), timeout=60)
        assert r.status == 200, r
        assert tool.calls == [], "the tool ran without agent.tool.weather"
        assert "tool weather is not allowed for this caller" in r.json()["response"], r.json()
        m = n.get("/metrics").body.decode()
        assert ('agent_tool_calls_total{agent_id="tooly",tool="weather",result="refused"} 1'
                in m), m
        # role toolsmith: both.
        r = n.post("/v1/agents/tooly/infer", ask, headers=key(n, "taras", ["toolsmith"]),
                   timeout=60)
        assert r.status == 200, r
        assert len(tool.calls) == 1, tool.calls
    finally:
        fake.terminate()
        fake.wait()
        tool.close()


def test_telegram_users_are_held_to_the_policy(ctx):
    from test_telegram import TG, BOT, make_update
    d = tempfile.mkdtemp(prefix="dagi-e2e-policy-")
    path = os.path.join(d, "policy.yml")
    with open(path, "w") as f:
        f.write(POLICY)  # binds nothing to tg:*
    t = TG(ctx, env={"DAGI_REGISTRY_POLICIES": path})
    try:
        t.deliver(make_update("text", "привіт", bot=BOT))
        t.wait_handled("refused")
        assert t.sent() == [] and t.model_calls() == 0
        m = t.node.get("/metrics").body.decode()
        assert 'agent_denies_total{agent_id="helion",action="agent",reason="no_grant"} 1' in m
    finally:
        t.close()


def test_a_telegram_chat_acts_in_its_team(ctx):
    from test_telegram import TG, BOT, make_update
    d = tempfile.mkdtemp(prefix="dagi-e2e-policy-")
    path = os.path.join(d, "policy.yml")
    with open(path, "w") as f:
        f.write(POLICY.replace('  - {subject: "role:dev", roles: [dev]}\n',
                               '  - {subject: "role:dev", roles: [dev]}\n'
                               '  - {subject: "tg:*", roles: [dev]}\n'))
    t = TG(ctx, env={"DAGI_REGISTRY_POLICIES": path})
    try:
        n = t.node
        # Unmapped: the default plan, every agent.
        t.deliver(make_update("text", "привіт", bot=BOT))
        t.wait_sent(1)
        # Mapped to a team whose plan has only druid: helion is not entitled.
        assert n.post("/v1/teams", {"id": "greens", "name": "Greens"},
                      headers=n.auth()).status == 201
        r = n.post("/v1/teams/greens/chats", {"chat_id": 1001}, headers=n.auth())
        assert r.status == 201, r
        t.deliver(make_update("text", "ще раз", bot=BOT))
        t.wait_handled("refused")
        assert len(t.sent()) == 1
        m = n.get("/metrics").body.decode()
        assert ('agent_denies_total{agent_id="helion",action="agent",reason="not_entitled"} 1'
                in m), m
    finally:
        t.close()
