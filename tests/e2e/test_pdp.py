"""The pdp role through the real binary: POST /v1/pdp/decide with the
shipped config/policy.yml (allow, explicit deny, no grant, not entitled),
who may ask (the admin key, a key the bundle grants pdp.decide, not a plain
user key, not nobody), bad bodies (400 naming the field), the same answers
on the bus (dagi.pdp.decide, in-process and through NATS), GET
/v1/pdp/bundle, a reload that swaps the bundle and one that is refused, a
node that will not start on a broken bundle, no policy at all (admin
only), and what a deny leaves behind: a count and a log line without the
principal."""
import os
import json
import shutil
import signal
import tempfile

from harness import wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLE = os.path.join(HERE, "..", "..", "config", "policy.yml")


def bearer(key):
    return {"Authorization": "Bearer " + key}


def pdp_node(ctx, policy_text=None, extra_config=""):
    """A node whose registry.policies is a file in its own temp dir (the
    shipped sample unless policy_text is given)."""
    tmp = tempfile.mkdtemp(prefix="dagi-e2e-pdp-")
    path = os.path.join(tmp, "policy.yml")
    if policy_text is None:
        shutil.copyfile(SAMPLE, path)
    else:
        with open(path, "w") as f:
            f.write(policy_text)
    n = ctx.node(config=f"registry:\n  policies: {path}\n{extra_config}", tmp=tmp)
    n.policy_path = path
    return n


def decide(n, body, headers=None, status=200):
    r = n.post("/v1/pdp/decide", body, headers=headers if headers is not None else n.auth())
    assert r.status == status, (body, r)
    return r.json()


def verdict(n, body, **kw):
    d = decide(n, body, **kw)
    return (d["allow"], d["reason"], d["rule"])


def create_key(n, body):
    r = n.post("/v1/admin/keys", body, headers=n.auth())
    assert r.status == 201, r
    return r.json()["key"]


def metric(n, action_prefix, decision):
    text = n.get("/metrics").body.decode()
    want = f'pdp_decisions_total{{action_prefix="{action_prefix}",decision="{decision}"}}'
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.split()[-1])
    return 0.0


def stop_cleanly(n):
    """A clean stop, so a sanitized build reports leaks and errors."""
    assert n.stop() == 0
    log = n.stderr_text()
    assert "Sanitizer" not in log and "runtime error" not in log, log[-3000:]


def test_pdp_decide_with_the_sample_policy(ctx):
    n = pdp_node(ctx)
    tg = {"principal": "tg:42", "subjects": ["tg:42"]}
    assert verdict(n, {**tg, "action": "agent.use", "resource": "helion"}) == \
        (True, "granted", "user")
    assert verdict(n, {**tg, "action": "config.write"}) == (False, "explicit_deny", "user")
    assert verdict(n, {**tg, "action": "audit.read"}) == (False, "no_grant", None)
    # Confidential mode: granted to energy's members, capped by the plans.
    member = {"principal": "tg:42", "subjects": ["tg:42", "team:energy"]}
    assert verdict(n, {**member, "team": "energy", "action": "mode.confidential"}) == \
        (True, "granted", "confidential_user")
    assert verdict(n, {**member, "team": "daarion", "action": "mode.confidential"}) == \
        (False, "not_entitled", "*")
    assert verdict(n, {"principal": "admin", "action": "config.write"}) == \
        (True, "granted", "admin")
    assert verdict(n, {"principal": "user:x", "subjects": ["role:auditor"],
                       "action": "audit.read"}) == (True, "granted", "auditor")
    # A request for a pattern is not a request for everything under it.
    assert verdict(n, {"principal": "admin", "action": "agent.*"}) == \
        (False, "invalid_request", None)
    stop_cleanly(n)


def test_pdp_decide_needs_a_caller_with_pdp_decide(ctx):
    n = pdp_node(ctx)
    body = {"principal": "tg:1", "action": "agent.use", "resource": "helion"}
    r = n.post("/v1/pdp/decide", body)
    assert r.status == 401, r
    plain = create_key(n, {"user_id": "olena", "roles": ["user"]})
    r = n.post("/v1/pdp/decide", body, headers=bearer(plain))
    assert r.status == 403 and r.json()["error"]["code"] == "forbidden", r
    client = create_key(n, {"user_id": "crm", "roles": ["pdp"]})
    assert verdict(n, body, headers=bearer(client)) == (True, "granted", "user")
    # The refusal of the plain key is itself a counted deny.
    assert metric(n, "pdp", "deny") >= 1
    assert metric(n, "pdp", "allow") >= 1
    # The bundle summary is the admin's.
    assert n.get("/v1/pdp/bundle", headers=bearer(client)).status == 403


def test_pdp_bad_body_names_the_field(ctx):
    n = pdp_node(ctx)
    cases = [
        ({"action": "agent.use"}, "principal"),
        ({"principal": "", "action": "agent.use"}, "principal"),
        ({"principal": 42, "action": "agent.use"}, "principal"),
        ({"principal": "tg:1"}, "action"),
        ({"principal": "tg:1", "action": ["agent.use"]}, "action"),
        ({"principal": "tg:1", "action": "agent.use", "team": 7}, "team"),
        ({"principal": "tg:1", "action": "agent.use", "resource": {"id": "helion"}}, "resource"),
        ({"principal": "tg:1", "action": "agent.use", "subjects": "tg:1"}, "subjects"),
        ({"principal": "tg:1", "action": "agent.use", "subjects": [""]}, "subjects"),
        ({"principal": "tg:1", "action": "agent.use", "subjects": ["s"] * 65}, "subjects"),
        ({"principal": "tg:1", "action": "agent.use", "colour": "red"}, "body"),
    ]
    for body, field in cases:
        r = n.post("/v1/pdp/decide", body, headers=n.auth())
        assert r.status == 400, (body, r)
        err = r.json()["error"]
        assert err["code"] == "invalid_field" and err["field"] == field, (body, r)
    for raw in (b"{not json", b"[1, 2]"):
        r = n.post("/v1/pdp/decide", raw, headers={**n.auth(), "Content-Type": "application/json"})
        assert r.status == 400 and r.json()["error"]["code"] == "invalid_json", r


def bus_decide(n, data):
    r = n.post("/v1/test/bus/request", {"subject": "dagi.pdp.decide", "data": data},
               headers=n.auth(), timeout=60)
    assert r.status == 200, r
    return r.json()


def bus_suite(n):
    r = bus_decide(n, {"principal": "tg:42", "action": "agent.use", "resource": "helion"})
    assert r["ok"], r
    assert json.loads(r["result"]) == {"allow": True, "reason": "granted", "rule": "user"}
    r = bus_decide(n, {"principal": "tg:42", "action": "config.write"})
    assert json.loads(r["result"]) == {"allow": False, "reason": "explicit_deny", "rule": "user"}
    r = bus_decide(n, {"principal": "tg:42"})
    assert not r["ok"] and r["error"] == "invalid", r
    assert "action" in r["message"], r
    stop_cleanly(n)


def test_pdp_on_the_bus_in_process(ctx):
    bus_suite(pdp_node(ctx))


def test_pdp_on_the_bus_through_nats(ctx):
    bus_suite(pdp_node(ctx, extra_config="bus:\n  inprocess: false\n"))


def test_pdp_bundle_summary_and_reload(ctx):
    n = pdp_node(ctx)
    s = n.get("/v1/pdp/bundle", headers=n.auth())
    assert s.status == 200, s
    s = s.json()
    # The bundle is the registry's "policies" document, imported from the file.
    assert s["loaded"] is True and s["source"] == "policies/policy.yml", s
    assert (s["roles"], s["plans"], s["teams"], s["bindings"]) == (7, 2, 2, 10), s
    assert len(s["checksum"]) == 64
    first = s["checksum"]
    tg = {"principal": "tg:42", "action": "agent.use", "resource": "helion"}
    assert verdict(n, tg)[0] is True

    # A new bundle that denies Telegram users agent use: after SIGHUP the
    # registry imports the changed file and every role swaps to it.
    text = open(SAMPLE).read().replace(
        "  - id: auditor\n",
        "  - id: tg_blocked\n    deny: [agent.use]\n  - id: auditor\n").replace(
        '{subject: "tg:*", roles: [user]}', '{subject: "tg:*", roles: [user, tg_blocked]}')
    with open(n.policy_path, "w") as f:
        f.write(text)
    n.signal(signal.SIGHUP)
    wait_until(lambda: n.get("/v1/pdp/bundle", headers=n.auth()).json()["checksum"] != first,
               10, "the new bundle")
    assert verdict(n, tg) == (False, "explicit_deny", "tg_blocked")
    second = n.get("/v1/pdp/bundle", headers=n.auth()).json()["checksum"]

    # A broken edit is refused; the bundle in force stays.
    with open(n.policy_path, "w") as f:
        f.write("roles:\n  - id: x\n    allow: [agent..use]\n")
    n.signal(signal.SIGHUP)
    wait_until(lambda: "the configuration's documents are invalid" in n.stderr_text(),
               10, "the refusal")
    assert "policies/policy.yml:3: roles[0].allow" in n.stderr_text()
    assert n.get("/v1/pdp/bundle", headers=n.auth()).json()["checksum"] == second
    assert verdict(n, tg) == (False, "explicit_deny", "tg_blocked")
    stop_cleanly(n)


def test_pdp_node_refuses_a_broken_bundle_at_start(ctx):
    tmp = tempfile.mkdtemp(prefix="dagi-e2e-pdp-")
    path = os.path.join(tmp, "policy.yml")
    with open(path, "w") as f:
        f.write("roles:\n  - id: r\nbindings:\n  - {subject: \"usr:1\", roles: [r]}\n")
    n = ctx.node(config=f"registry:\n  policies: {path}\n", tmp=tmp, start=False)
    n.start(wait_ready=False)
    code = n.wait(20)
    assert code != 0
    err = n.stderr_text()
    assert "policy.yml:4: bindings[0].subject" in err, err[-2000:]


def test_pdp_without_a_policy_only_admin_may_act(ctx):
    n = ctx.node()
    assert verdict(n, {"principal": "admin", "action": "config.write"}) == \
        (True, "builtin_admin", None)
    assert verdict(n, {"principal": "tg:1", "action": "agent.use", "resource": "helion"}) == \
        (False, "no_policy", None)
    s = n.get("/v1/pdp/bundle", headers=n.auth()).json()
    assert s["loaded"] is False
    # Nobody but the admin key may ask, either.
    plain = create_key(n, {"user_id": "crm", "roles": ["pdp"]})
    r = n.post("/v1/pdp/decide", {"principal": "admin", "action": "x"}, headers=bearer(plain))
    assert r.status == 403, r


def test_pdp_deny_is_counted_and_logged_without_the_principal(ctx):
    n = pdp_node(ctx)
    before = metric(n, "config", "deny")
    verdict(n, {"principal": "tg:987654321", "action": "config.write"})
    verdict(n, {"principal": "tg:987654321", "action": "config.write"})
    assert metric(n, "config", "deny") == before + 2
    # Bounded labels: an action from outside counts as "other", never as itself.
    verdict(n, {"principal": "tg:987654321", "action": "whatever.custom_thing"})
    text = n.get("/metrics").body.decode()
    assert "whatever" not in text and "987654321" not in text
    assert metric(n, "other", "deny") >= 1

    def denied():
        return [r for r in n.log_lines() if r.get("message") == "policy denied"
                and r.get("action") == "config.write"]
    lines = wait_until(lambda: len(denied()) >= 2 and denied(), 10, "the deny log lines")
    assert lines[0]["reason"] == "explicit_deny" and lines[0]["rule"] == "user", lines[0]
    assert "987654321" not in n.stderr_text()
