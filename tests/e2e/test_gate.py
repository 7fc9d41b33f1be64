"""The gate through the real binary: the route-table walk (no route skips
it), JWT credentials, signed webhooks and rate limits.  API keys have their
own file (test_keys.py)."""
import base64
import hashlib
import hmac
import json
import os
import subprocess
import tempfile
import time

from test_router import config as router_config
from test_swapper import start_fake

PUBLIC = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"), ("GET", "/health")}
CLASSES = {"agents", "openai", "hooks", "telegram", "admin", "ops"}

HS_SECRET = "a-test-secret-of-more-than-thirty-two-bytes"
HOOK_NEW = "hook-secret-new-0123456789"
HOOK_OLD = "hook-secret-old-0123456789"
ENV = {"DAGI_TEST_JWT_SECRET": HS_SECRET, "DAGI_TEST_HOOK_NEW": HOOK_NEW,
       "DAGI_TEST_HOOK_OLD": HOOK_OLD}


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(header, claims, sign):
    head = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    return head + "." + b64(sign(head.encode()))


def hs256(data):
    return hmac.new(HS_SECRET.encode(), data, hashlib.sha256).digest()


def rs256(key_path):
    def sign(data):
        return subprocess.run(["openssl", "dgst", "-sha256", "-sign", key_path], input=data,
                              capture_output=True, check=True).stdout
    return sign


def claims(**kw):
    now = int(time.time())
    c = {"sub": "user-7", "iss": "test-issuer", "aud": "dagi-test", "exp": now + 600,
         "iat": now, "team": "energy"}
    c.update(kw)
    return c


def bearer(token):
    return {"Authorization": "Bearer " + token}


class Keys:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="dagi-e2e-jwt-")
        self.private = os.path.join(self.dir, "rs.pem")
        self.public = os.path.join(self.dir, "rs.pub.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                        "rsa_keygen_bits:2048", "-out", self.private], check=True,
                       capture_output=True)
        subprocess.run(["openssl", "pkey", "-in", self.private, "-pubout", "-out", self.public],
                       check=True, capture_output=True)


def gate_config(keys, extra=""):
    return f"""
auth:
  jwt:
    issuer: test-issuer
    audience: dagi-test
    keys:
      - {{kid: hs1, alg: HS256, secret_env: DAGI_TEST_JWT_SECRET}}
      - {{kid: rs1, alg: RS256, public_key_file: {keys.public}}}
  hooks:
    - {{agent: helion, secret_env: DAGI_TEST_HOOK_NEW, previous_secret_env: DAGI_TEST_HOOK_OLD}}
{extra}"""


def test_route_walk_finds_no_route_that_skips_the_gate(ctx):
    n = ctx.node(config=gate_config(Keys()), env=ENV)
    routes = n.get("/v1/admin/routes", headers=n.auth()).json()["routes"]
    assert len(routes) > 20, routes
    seen_public = set()
    for r in routes:
        assert r["class"] in CLASSES, r
        key = (r["method"], r["pattern"])
        if r["auth"] == "public":
            seen_public.add(key)
            continue
        path = r["pattern"].replace("{rest*}", "x")
        for name in ("id", "agent_id", "seq", "key", "user", "chat_id", "kind", "name"):
            path = path.replace("{" + name + "}", "x")
        assert "{" not in path, path
        for headers in ({}, bearer("not-a-key"), bearer("dagi_aaaaaaaaaaaa_" + "A" * 43)):
            body = b"{}" if r["method"] in ("POST", "PUT") else None
            h = dict(headers, **({"Content-Type": "application/json"} if body else {}))
            resp = n.request(r["method"], path, body=body, headers=h)
            assert resp.status == 401, (r, headers, resp)
    assert seen_public == PUBLIC, seen_public
    # The admin routes refuse a valid credential without the admin role.
    token = jwt({"alg": "HS256", "kid": "hs1", "typ": "JWT"}, claims(), hs256)
    assert n.get("/v1/admin/routes", headers=bearer(token)).status == 403
    assert n.get("/v1/models", headers=bearer(token)).status == 200


def test_jwt_hs256_and_rs256_and_what_is_refused(ctx):
    keys = Keys()
    n = ctx.node(config=gate_config(keys), env=ENV)
    ok_hs = jwt({"alg": "HS256", "kid": "hs1", "typ": "JWT"}, claims(), hs256)
    ok_rs = jwt({"alg": "RS256", "kid": "rs1"}, claims(), rs256(keys.private))
    for token in (ok_hs, ok_rs):
        assert n.get("/v1/models", headers=bearer(token)).status == 200
    head = b64(json.dumps({"alg": "none", "kid": "hs1"}).encode())
    refused = {
        "alg none": head + "." + b64(json.dumps(claims()).encode()) + ".",
        # HS256 with the RS256 key's kid: the classic key confusion.
        "wrong alg": jwt({"alg": "HS256", "kid": "rs1"}, claims(),
                         lambda d: hmac.new(open(keys.public, "rb").read(), d,
                                            hashlib.sha256).digest()),
        "expired": jwt({"alg": "HS256", "kid": "hs1"},
                       claims(exp=int(time.time()) - 3600), hs256),
        "wrong audience": jwt({"alg": "HS256", "kid": "hs1"}, claims(aud="someone-else"),
                              hs256),
        "wrong issuer": jwt({"alg": "HS256", "kid": "hs1"}, claims(iss="mallory"), hs256),
        "tampered": ok_hs[:-4] + ("AAAA" if not ok_hs.endswith("AAAA") else "BBBB"),
        "unknown kid": jwt({"alg": "HS256", "kid": "hs9"}, claims(), hs256),
    }
    for why, token in refused.items():
        r = n.get("/v1/models", headers=bearer(token))
        assert r.status == 401, (why, r)
        assert r.json()["error"]["code"] == "invalid_api_key", (why, r.json())
    r = n.post("/v1/agents/helion/infer", {"message": "hi"}, headers=bearer(refused["expired"]))
    assert r.status == 401 and "expired" in r.json()["error"]["message"], r


def sign_hook(secret, body, t=None):
    t = int(time.time()) if t is None else t
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Dagi-Signature": f"t={t},v1={mac}", "Content-Type": "application/json"}


def test_signed_webhooks(ctx):
    fake, addr = start_fake(ctx)
    try:
        n = ctx.node(config=router_config(addr) + gate_config(Keys()), env=ENV)
        body = json.dumps({"type": "deploy", "text": "version 2 is live"}).encode()
        r = n.post("/v1/hooks/helion", body, headers=sign_hook(HOOK_NEW, body))
        assert r.status == 200, r
        assert r.json()["response"] == "echo: Event deploy: version 2 is live", r.json()
        # During a rotation the previous secret still works.
        r = n.post("/v1/hooks/helion", body, headers=sign_hook(HOOK_OLD, body))
        assert r.status == 200, r
        refused = {
            "tampered": (body.replace(b"2", b"3"), sign_hook(HOOK_NEW, body)),
            "stale": (body, sign_hook(HOOK_NEW, body, t=int(time.time()) - 301)),
            "future": (body, sign_hook(HOOK_NEW, body, t=int(time.time()) + 301)),
            "unknown secret": (body, sign_hook("another-secret-0123456789", body)),
            "no signature": (body, {"Content-Type": "application/json"}),
        }
        for why, (b, h) in refused.items():
            r = n.post("/v1/hooks/helion", b, headers=h)
            assert r.status == 401, (why, r)
        # An agent without a configured hook: refused the same way.
        r = n.post("/v1/hooks/druid", body, headers=sign_hook(HOOK_NEW, body))
        assert r.status == 401, r
        # Signature first, then the shape: a signed body that is not valid.
        bad = json.dumps({"type": 5}).encode()
        r = n.post("/v1/hooks/helion", bad, headers=sign_hook(HOOK_NEW, bad))
        assert r.status == 400 and r.json()["error"]["field"] == "type", r
    finally:
        fake.terminate()
        fake.wait()


def test_rate_limits_per_key_and_per_ip(ctx):
    limits = """  rate_limits:
    - {routes: openai, per: key, limit: 10, window: 1m}
    - {routes: agents, per: ip, limit: 5, window: 1m}
"""
    n = ctx.node(config=gate_config(Keys(), limits), env=ENV)
    for i in range(10):
        assert n.get("/v1/models", headers=n.auth()).status == 200, i
    r = n.get("/v1/models", headers=n.auth())
    assert r.status == 429, r
    assert 1 <= int(r.headers["retry-after"]) <= 7, r.headers
    err = r.json()["error"]
    assert err["code"] == "rate_limit_exceeded" and err["type"] == "requests", err
    # Another credential has its own bucket.
    token = jwt({"alg": "HS256", "kid": "hs1"}, claims(), hs256)
    assert n.get("/v1/models", headers=bearer(token)).status == 200
    # The per-IP bucket holds whatever key is presented.
    statuses = []
    for i in range(6):
        h = n.auth() if i % 2 else bearer(token)
        statuses.append(n.post("/v1/agents/nobody/infer", {"message": "hi"}, headers=h).status)
    assert statuses[:5] == [404] * 5 and statuses[5] == 429, statuses
    m = n.get("/metrics").body.decode()
    assert 'dagi_gate_refused_total{class="openai",reason="rate_limited"} 1' in m
    assert 'dagi_gate_refused_total{class="agents",reason="rate_limited"} 1' in m


def test_body_validation_names_the_field(ctx):
    n = ctx.node(config=gate_config(Keys()), env=ENV)
    r = n.post("/v1/agents/helion/infer", {"message": "hi", "mesage": "typo"}, headers=n.auth())
    assert r.status == 400 and r.json()["error"]["field"] == "mesage", r
    r = n.post("/v1/agents/helion/infer", {"message": 5}, headers=n.auth())
    assert r.status == 400 and r.json()["error"]["field"] == "message", r
    r = n.post("/v1/agents/helion/infer", {"message": "x" * (64 * 1024 + 1)}, headers=n.auth())
    assert r.status == 413 and "cap" in r.json()["error"]["message"], r
    # OpenAI's routes ignore fields they do not know, in OpenAI's error shape otherwise.
    r = n.post("/v1/chat/completions", {"model": "helion", "messages": "nope"}, headers=n.auth())
    assert r.status == 400 and r.json()["error"]["param"] == "messages", r
    r = n.post("/v1/chat/completions", {"messages": []}, headers=n.auth())
    assert r.status == 400 and r.json()["error"]["param"] == "model", r
