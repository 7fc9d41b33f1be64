"""The audit log through the real binary: events from the gate and the key
API reach GET /v1/audit through JetStream and the audit role; a malformed
event is dead-lettered and the dead letter audited; `dagi audit verify`
passes on the chain the node wrote and names the row changed by hand."""
import json
import os
import re
import sqlite3
import time

from harness import NatsClient, run_dagi, wait_until

FAST_CONSUMER = """
bus:
  consumer:
    max_deliver: 3
    backoff_base: 100ms
    backoff_max: 1s
    ack_wait: 5s
"""
NEVER_ISSUED = "dagi_aaaaaaaaaaaa_" + "A" * 43
PSEUDONYM = re.compile(r"^p_[0-9a-f]{32}$")


def bearer(key):
    return {"Authorization": "Bearer " + key}


def records(n, query="", headers=None):
    r = n.get("/v1/audit" + query, headers=headers or n.auth())
    assert r.status == 200, r
    return r.json()["records"]


def wait_for(n, pred, what, query=""):
    """Polls GET /v1/audit until pred(records) holds; returns the records."""
    return wait_until(lambda: (lambda rs: rs if pred(rs) else None)(records(n, query)), 20, what)


def actions(rs):
    return [(r["service"], r["action"]) for r in rs]


def stop_cleanly(n):
    assert n.stop() == 0
    log = n.stderr_text()
    assert "Sanitizer" not in log and "runtime error" not in log, log[-3000:]


def test_audit_events_reach_the_log_and_verify_names_a_changed_row(ctx):
    n = ctx.node()
    assert n.get("/v1/models", headers=bearer(NEVER_ISSUED)).status == 401
    r = n.post("/v1/admin/keys", {"user_id": "alice", "roles": ["dev"]}, headers=n.auth())
    assert r.status == 201, r
    key = r.json()
    assert n.request("DELETE", f"/v1/admin/keys/{key['id']}", headers=n.auth()).status == 200
    rs = wait_for(n, lambda rs: {("gateway", "auth_failed"), ("keys", "key_created"),
                                 ("keys", "key_revoked")} <= set(actions(rs)),
                  "the three events in GET /v1/audit")
    rs = records(n)  # everything so far: other roles may have written records too
    by = {(r["service"], r["action"]): r for r in rs}

    failed = by[("gateway", "auth_failed")]
    assert failed["actor"] == "anonymous" and failed["decision"] == "deny", failed
    assert failed["subject"] == "route:GET /v1/models", failed
    assert failed["metadata"] == {"class": "openai", "reason": "bad_key", "ip": "127.0.0.1"}

    created = by[("keys", "key_created")]
    assert PSEUDONYM.match(created["actor"]), created  # the admin, pseudonymised
    assert created["subject"] == f"key:{key['id']}"
    assert created["metadata"] == {"key_id": key["id"], "roles": ["dev"], "expires_at_ms": None}
    assert by[("keys", "key_revoked")]["actor"] == created["actor"]
    # The chain: consecutive seqs, each linked to the one before.
    seqs = [r["seq"] for r in rs]
    assert seqs == list(range(1, len(rs) + 1)), seqs
    assert rs[0]["prev_hash"] == "0" * 64
    for a, b in zip(rs, rs[1:]):
        assert b["prev_hash"] == a["hash"]
    # No principal and no key in the log: the admin is found by pseudonym.
    assert "alice" not in json.dumps(rs) and key["key"] not in json.dumps(rs)
    mine = records(n, "?actor=admin&service=keys")
    assert [r["action"] for r in mine] == ["key_created", "key_revoked"], mine
    assert records(n, f"?actor={created['actor']}") == mine
    assert records(n, "?actor=admin&action=nothing") == []
    v = n.get("/v1/audit/verify", headers=n.auth()).json()
    assert v["ok"] is True and v["records"] >= len(rs), v
    stop_cleanly(n)

    rc, out, err = run_dagi("audit", "verify", "--data-dir", n.data_dir)
    assert rc == 0, (out, err)
    assert re.match(r"ok: \d+ records, last seq \d+, head [0-9a-f]{64}$", out.strip()), out

    # Someone with write access to the file: drop the trigger, edit one row.
    target = created["seq"]
    db = sqlite3.connect(os.path.join(n.data_dir, "dagi.db"))
    try:
        db.execute("UPDATE audit_log SET decision = 'deny' WHERE seq = ?", (target,))
        raise AssertionError("the trigger let an UPDATE through")
    except sqlite3.DatabaseError as e:
        assert "append-only" in str(e), e
    db.execute("DROP TRIGGER audit_log_no_update")
    db.execute("UPDATE audit_log SET decision = 'deny' WHERE seq = ?", (target,))
    db.commit()
    db.close()
    rc, out, err = run_dagi("audit", "verify", "--data-dir", n.data_dir)
    assert rc == 1, (rc, out, err)
    assert f"broken at seq {target}:" in out, out


def test_audit_auth_failures_are_rate_limited_per_ip(ctx):
    n = ctx.node()
    start = time.monotonic()
    for _ in range(30):
        assert n.get("/v1/models", headers=bearer(NEVER_ISSUED)).status == 401
    seconds = time.monotonic() - start
    time.sleep(0.5)  # what was published lands: we look for a bound, not a count
    wait_for(n, lambda rs: ("gateway", "auth_failed") in actions(rs), "the first auth failure")
    time.sleep(0.5)
    failed = [r for r in records(n, "?service=gateway&action=auth_failed")]
    assert 1 <= len(failed) <= int(seconds) + 2, (len(failed), seconds)
    metrics = n.get("/metrics").body.decode()
    m = re.search(r'^dagi_gate_audit_suppressed_total\{class="openai"\} (\d+)', metrics, re.M)
    assert m and int(m.group(1)) >= 30 - len(failed), metrics[-2000:]


def test_audit_read_needs_admin_or_auditor(ctx):
    # audit.read is the policy's: the sample grants it to the auditor role.
    policy = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), "config", "policy.yml")
    n = ctx.node(config=f"registry:\n  policies: {policy}\n")
    auditor = n.post("/v1/admin/keys", {"user_id": "ann", "roles": ["auditor"]},
                     headers=n.auth()).json()["key"]
    dev = n.post("/v1/admin/keys", {"user_id": "dan", "roles": ["dev"]},
                 headers=n.auth()).json()["key"]
    wait_for(n, lambda rs: len(rs) >= 2, "the key events")
    assert records(n, headers=bearer(auditor))
    r = n.get("/v1/audit", headers=bearer(dev))
    assert r.status == 403, r
    assert n.get("/v1/audit/verify", headers=bearer(auditor)).status == 403  # admin only
    wait_for(n, lambda rs: any(r["action"] == "read_denied" and r["decision"] == "deny"
                               for r in rs), "the refused read in the log", "?service=audit")
    for query, field in [("?limit=0", "limit"), ("?limit=1001", "limit"), ("?since=x", "since"),
                         ("?service=Gate.way", "service"), ("?after_seq=-1", "after_seq")]:
        r = n.get("/v1/audit" + query, headers=n.auth())
        assert r.status == 400 and r.json()["error"]["field"] == field, (query, r)
    page = n.get("/v1/audit?limit=1", headers=n.auth()).json()
    assert len(page["records"]) == 1 and page["next_after_seq"] == 1, page
    rest = records(n, "?after_seq=1")
    assert rest and rest[0]["seq"] == 2


def test_audit_list_command(ctx):
    n = ctx.node()
    assert n.post("/v1/admin/keys", {"user_id": "alice"}, headers=n.auth()).status == 201
    wait_for(n, lambda rs: ("keys", "key_created") in actions(rs), "the key event")
    rc, out, err = run_dagi("audit", "list", "--data-dir", n.data_dir, "--service", "keys")
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["SEQ", "TIME", "SERVICE"], out
    assert any("key_created" in line for line in lines[1:]), out
    rc, out, err = run_dagi("audit", "list", "--data-dir", n.data_dir, "--json", "--actor",
                            "admin", "--since", "1h")
    assert rc == 0, err
    assert [r["action"] for r in json.loads(out)["records"]] == ["key_created"], out
    rc, out, err = run_dagi("audit", "list", "--data-dir", n.data_dir, "--since", "soon")
    assert rc == 2, (out, err)
    rc, _, err = run_dagi("audit", "verify", "extra")
    assert rc == 2, err


def test_audit_malformed_event_is_dead_lettered_and_audited(ctx):
    n = ctx.node(config=FAST_CONSUMER)
    wait_until(lambda: n.get("/readyz").status == 200, 10, "ready")
    with open(os.path.join(n.data_dir, "nats", "credentials")) as f:
        creds = dict(line.split("=", 1) for line in f.read().split() if "=" in line)
    with open(os.path.join(n.data_dir, "nats", "port")) as f:
        url = f"nats://127.0.0.1:{f.read().strip()}"
    c = NatsClient(url, creds["user"], creds["password"])
    c.request("audit.gateway.forged", b'{"not": "an envelope"}')  # the stream's ack
    c.close()

    def dead_lettered():
        rc, out, _ = run_dagi("dlq", "list", "--data-dir", n.data_dir)
        return rc == 0 and [d for d in json.loads(out)
                            if d["original_subject"] == "audit.gateway.forged"]
    dl = wait_until(dead_lettered, 30, "the malformed event in DAGI_DLQ")[0]
    assert "malformed audit event" in dl["error"], dl
    rs = wait_for(n, lambda rs: ("bus", "dead_letter") in actions(rs), "the dead letter audited",
                  "?service=bus")
    rec = rs[0]
    assert rec["actor"] == "system" and rec["decision"] == "error", rec
    assert rec["metadata"]["subject"] == "audit.gateway.forged", rec
    assert rec["metadata"]["stream"] == "DAGI_AUDIT" and rec["metadata"]["deliveries"] == 3
    assert not records(n, "?service=gateway&action=forged")
    stop_cleanly(n)
    rc, out, err = run_dagi("audit", "verify", "--data-dir", n.data_dir)
    assert rc == 0, (out, err)


def test_audit_without_jetstream_appends_directly(ctx):
    n = ctx.node(config="bus:\n  url: none\n")
    assert n.get("/v1/models", headers=bearer(NEVER_ISSUED)).status == 401
    assert n.post("/v1/admin/keys", {"user_id": "alice"}, headers=n.auth()).status == 201
    wait_for(n, lambda rs: {("gateway", "auth_failed"), ("keys", "key_created")}
             <= set(actions(rs)), "both events, appended by the emitter")
    stop_cleanly(n)
    rc, out, err = run_dagi("audit", "verify", "--data-dir", n.data_dir)
    assert rc == 0 and out.startswith("ok: "), (out, err)
