"""The Privacy Gate's canary: a confidential request carrying a unique,
secret-shaped token (random, 32 characters), without and then with the
user's consent.  Afterwards every log file, every stream's stored messages,
the audit log and the database files are searched byte for byte: without
consent the token reaches neither the fake model nor any of them; with
consent it reaches the model and still none of the others."""
import os
import secrets
import string

from harness import embedded_nats_client, wait_until
from test_router import config
from test_swapper import start_fake
from test_cplane import fake_stats

ALPHABET = string.ascii_letters + string.digits


def canary():
    # Mixed classes, like a real key: the redactor must find it by its shape.
    while True:
        t = "".join(secrets.choice(ALPHABET) for _ in range(32))
        if any(c.isdigit() for c in t) and any(c.isupper() for c in t):
            return t


def files_holding(root, needle):
    """Every file under root whose bytes contain needle."""
    hits = []
    for d, _, names in os.walk(root):
        for name in names:
            p = os.path.join(d, name)
            try:
                with open(p, "rb") as f:
                    if needle.encode() in f.read():
                        hits.append(p)
            except OSError:
                pass
    return hits


def model_saw(addr, needle):
    last = fake_stats(addr)["last_request"] or {}
    return needle in str(last)


def user_key(n):
    # team energy: its plan allows confidential, and the sample policy
    # grants mode.confidential to its members.
    r = n.post("/v1/admin/keys", {"user_id": "olena", "team": "energy", "roles": ["user"]},
               headers=n.auth())
    assert r.status == 201, r
    return {"Authorization": "Bearer " + r.json()["key"]}


def ask(n, h, token):
    body = {"prompt": f"Here is our deploy key {token} - can you check whether it leaked? "
                      "We are a solar co-op in Lviv.",
            "mode": "confidential",
            # A caller's own system prompt is the caller's content, not the agent's.
            "system_prompt": f"Keep this key in mind: {token}.",
            "history": [{"role": "user", "content": "Our co-op has forty members."},
                        {"role": "assistant", "content": "Noted."}]}
    r = n.post("/v1/agents/helion/infer", body, headers=h, timeout=60)
    assert r.status == 200, r
    return r


def everything_but_the_model(n, token):
    """The token's hits in logs, streams, audit, database files, metrics."""
    hits = files_holding(n.tmp, token)  # logs, the store, JetStream's files
    c = embedded_nats_client(n)
    try:
        for stream in ("DAGI_EVENTS", "DAGI_AUDIT", "DAGI_WORK", "DAGI_DLQ"):
            _, _, body = c.request(f"$JS.API.STREAM.INFO.{stream}", b"")
            import json
            state = json.loads(body).get("state") or {}
            for seq in range(state.get("first_seq", 1), state.get("last_seq", 0) + 1):
                _, _, m = c.request(f"$JS.API.STREAM.MSG.GET.{stream}",
                                    json.dumps({"seq": seq}).encode())
                import base64
                doc = json.loads(m).get("message") or {}
                if token.encode() in base64.b64decode(doc.get("data", "")):
                    hits.append(f"{stream}#{seq}")
    finally:
        c.close()
    r = n.get("/v1/audit?limit=1000", headers=n.auth())
    assert r.status == 200, r
    if token in r.body.decode():
        hits.append("GET /v1/audit")
    if token in n.get("/metrics").body.decode():
        hits.append("/metrics")
    return hits


def test_confidential_canary_with_and_without_consent(ctx):
    fake, addr = start_fake(ctx)
    try:
        n = ctx.node(config=config(addr))
        h = user_key(n)

        # Without consent: a sanitized summary, the token redacted.
        t1 = canary()
        ask(n, h, t1)
        assert not model_saw(addr, t1), "the model saw the token without consent"
        last = str(fake_stats(addr)["last_request"])
        assert "Sanitized summary" in last and "[secret]" in last, last[:2000]
        assert "solar co-op" in last  # the summary still carries the context

        # Consent, granted through the API and audited.
        r = n.request("PUT", "/v1/consent/helion", b'{"granted": true}',
                      headers=dict(h, **{"Content-Type": "application/json"}))
        assert r.status == 200, r
        t2 = canary()
        ask(n, h, t2)
        assert model_saw(addr, t2), "with consent the model gets the whole content"

        # Wait until the audit role has the confidential_use records, so the
        # search below sees everything that will ever be written for them.
        def recorded():
            r = n.get("/v1/audit?action=confidential_use", headers=n.auth())
            return r.status == 200 and len(r.json().get("records", [])) >= 2
        wait_until(recorded, 20, "both confidential_use records")
        n.stop()
        n.start()
        for token in (t1, t2):
            hits = everything_but_the_model(n, token)
            assert hits == [], (token, hits)
    finally:
        fake.terminate()
        fake.wait()


def test_consent_from_telegram_is_stored_and_audited(ctx):
    from test_telegram import TG, BOT, make_update
    t = TG(ctx)
    try:
        n = t.node
        user = make_update("text", "x", bot=BOT)["message"]["from"]["id"]
        t.deliver(make_update("command", "/consent on", bot=BOT))
        t.wait_sent(1)
        r = n.get(f"/v1/consent?user=tg:{user}", headers=n.auth())
        assert r.status == 200, r
        body = r.json()
        records = body.get("consents") or body.get("records") or []
        assert any(c["agent_id"] == "helion" and c["granted"] for c in records), body
        t.deliver(make_update("command", "/consent off", bot=BOT))
        t.wait_sent(2)
        r = n.get(f"/v1/consent?user=tg:{user}", headers=n.auth()).json()
        records = r.get("consents") or r.get("records") or []
        assert not any(c["granted"] for c in records if c["agent_id"] == "helion"), r

        def audited():
            r = n.get("/v1/audit?service=privacy", headers=n.auth())
            acts = [x["action"] for x in r.json().get("records", [])] if r.status == 200 else []
            return "consent_granted" in acts and "consent_revoked" in acts
        wait_until(audited, 20, "both consent changes in the audit log")
    finally:
        t.close()
