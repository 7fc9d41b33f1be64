"""User API keys through the real binary: the admin API (/v1/admin/keys),
the `dagi keys` command, and what the gate makes of a key - missing,
unknown, malformed, revoked, expired, valid, without and with the admin
role.  The plaintext key is shown once and must appear nowhere else."""
import json
import re
import time

from harness import run_dagi, wait_until

KEY_RE = re.compile(r"^dagi_[a-z2-7]{12}_[A-Za-z0-9_-]{43}$")
# Well-formed, but never issued by any node.
NEVER_ISSUED = "dagi_aaaaaaaaaaaa_" + "A" * 42 + "A"


def bearer(key):
    return {"Authorization": "Bearer " + key}


def create(n, body, status=201):
    r = n.post("/v1/admin/keys", body, headers=n.auth())
    assert r.status == status, r
    return r.json()


def list_keys(n, user=None):
    path = "/v1/admin/keys" + (f"?user_id={user}" if user else "")
    r = n.get(path, headers=n.auth())
    assert r.status == 200, r
    return r


def models(n, key):
    return n.get("/v1/models", headers=bearer(key) if key is not None else None)


def echo(n, key):
    return n.post("/v1/test/echo", {"ping": 1}, headers=bearer(key))


def assert_secret_absent(n, key, *texts):
    """Neither the key nor its secret part anywhere in texts or the log."""
    secret = key.rsplit("_", 1)[1]
    for text in texts + (n.stderr_text(),):
        assert key not in text and secret not in text, "the plaintext key leaked"


def stop_cleanly(n):
    """A clean stop, so a sanitized build reports leaks and errors."""
    assert n.stop() == 0
    log = n.stderr_text()
    assert "Sanitizer" not in log and "runtime error" not in log, log[-3000:]


def error_field(r, status):
    assert r.status == status, r
    return r.json()["error"].get("field")


# --- the admin API ---

def test_keys_create_answers_the_key_once(ctx):
    n = ctx.node()
    before = n.get("/v1/test/clock", headers=n.auth()).json()["now_ms"]
    a = create(n, {"user_id": "alice", "team": "core", "roles": ["dev", "ops"],
                   "name": "laptop", "expires_in": "30d"})
    assert KEY_RE.match(a["key"]), a["key"]
    assert a["key"].startswith(f"dagi_{a['id']}_")
    assert (a["user_id"], a["team"], a["roles"], a["name"]) == ("alice", "core", ["dev", "ops"],
                                                                "laptop")
    assert a["created_at_ms"] >= before
    assert a["expires_at_ms"] == a["created_at_ms"] + 30 * 86400 * 1000
    # The same request again makes another key: nothing is ever shown twice.
    b = create(n, {"user_id": "alice"})
    assert b["key"] != a["key"] and b["id"] != a["id"]
    assert b["team"] is None and b["roles"] == [] and b["name"] is None
    assert b["expires_at_ms"] is None
    assert create(n, {"user_id": "alice", "expires_in": 90})["expires_at_ms"] is not None


def test_keys_list_shows_no_secret(ctx):
    n = ctx.node()
    a = create(n, {"user_id": "alice", "roles": ["dev"]})
    create(n, {"user_id": "bob"})
    assert models(n, a["key"]).status == 200  # sets last_used_at_ms
    r = list_keys(n, "alice")
    keys = r.json()["keys"]
    assert r.json()["truncated"] is False
    assert [k["id"] for k in keys] == [a["id"]]
    k = keys[0]
    assert set(k) == {"id", "user_id", "team", "roles", "name", "created_at_ms", "expires_at_ms",
                      "revoked_at_ms", "last_used_at_ms"}, k
    assert k["roles"] == ["dev"] and k["revoked_at_ms"] is None
    wait_until(lambda: list_keys(n, "alice").json()["keys"][0]["last_used_at_ms"], 10,
               "last use to be recorded")
    everyone = list_keys(n).json()["keys"]
    assert sorted(k["user_id"] for k in everyone) == ["alice", "bob"]
    assert_secret_absent(n, a["key"], r.body.decode(), list_keys(n).body.decode())


def test_keys_validation_names_the_field(ctx):
    n = ctx.node()
    cases = [
        ({}, "user_id"),
        ({"user_id": ""}, "user_id"),
        ({"user_id": 7}, "user_id"),
        ({"user_id": "u" * 129}, "user_id"),
        ({"user_id": "u", "team": ["t"]}, "team"),
        ({"user_id": "u", "name": "n" * 129}, "name"),
        ({"user_id": "u", "roles": "admin"}, "roles"),
        ({"user_id": "u", "roles": ["ok", "not ok"]}, "roles"),
        ({"user_id": "u", "roles": [""]}, "roles"),
        ({"user_id": "u", "roles": [f"r{i}" for i in range(17)]}, "roles"),
        ({"user_id": "u", "expires_in": 0}, "expires_in"),
        ({"user_id": "u", "expires_in": -5}, "expires_in"),
        ({"user_id": "u", "expires_in": "soon"}, "expires_in"),
        ({"user_id": "u", "expires_in": "5 weeks"}, "expires_in"),
        ({"user_id": "u", "expires_in": 1.5}, "expires_in"),
        ({"user_id": "u", "expires_in": "1h", "expires_at_ms": 2 ** 50}, "expires_in"),
        ({"user_id": "u", "expires_at_ms": 1000}, "expires_at_ms"),
        ({"user_id": "u", "expires_at_ms": "tomorrow"}, "expires_at_ms"),
        ({"user_id": "u", "role": ["admin"]}, "role"),
    ]
    for body, field in cases:
        r = n.post("/v1/admin/keys", body, headers=n.auth())
        assert error_field(r, 400) == field, (body, r)
    assert n.post("/v1/admin/keys", b"{not json", headers={**n.auth(),
                  "Content-Type": "application/json"}).status == 400
    assert error_field(n.get("/v1/admin/keys?limit=0", headers=n.auth()), 400) == "limit"
    assert list_keys(n).json()["keys"] == []  # nothing was made
    stop_cleanly(n)


def test_keys_revoke_unknown_id_is_404(ctx):
    n = ctx.node()
    for kid in ("aaaaaaaaaaaa", "not-an-id", "AAAAAAAAAAAA"):
        r = n.request("DELETE", f"/v1/admin/keys/{kid}", headers=n.auth())
        assert r.status == 404, (kid, r)


# --- the gate ---

def test_keys_no_unknown_or_malformed_key_is_401(ctx):
    n = ctx.node()
    assert models(n, None).status == 401
    assert n.post("/v1/test/echo", {"ping": 1}).status == 401
    for key in (NEVER_ISSUED, "dagi_zz", "dagi_aaaaaaaaaaaa_short", "not-a-key",
                NEVER_ISSUED + "x", NEVER_ISSUED.replace("_A", "_!", 1)):
        assert models(n, key).status == 401, key
        assert echo(n, key).status == 401, key
    assert_secret_absent(n, NEVER_ISSUED)


def test_keys_valid_key_is_200(ctx):
    n = ctx.node()
    k = create(n, {"user_id": "alice"})["key"]
    r = models(n, k)
    assert r.status == 200 and r.json()["object"] == "list", r
    r = echo(n, k)
    assert r.status == 200 and r.json() == {"echo": {"ping": 1}}, r
    # This key's id with another secret.
    wrong = k[:-1] + ("B" if k[-1] != "B" else "C")
    assert models(n, wrong).status == 401


def test_keys_revoked_through_the_api_is_401(ctx):
    n = ctx.node()
    a = create(n, {"user_id": "alice"})
    assert models(n, a["key"]).status == 200  # now in the lookup cache
    r = n.request("DELETE", f"/v1/admin/keys/{a['id']}", headers=n.auth())
    assert r.status == 200 and r.json() == {"id": a["id"], "revoked": True}, r
    assert models(n, a["key"]).status == 401
    assert echo(n, a["key"]).status == 401
    # Revoking again succeeds and keeps the first time.
    first = list_keys(n, "alice").json()["keys"][0]["revoked_at_ms"]
    assert first
    assert n.request("DELETE", f"/v1/admin/keys/{a['id']}", headers=n.auth()).status == 200
    assert list_keys(n, "alice").json()["keys"][0]["revoked_at_ms"] == first
    stop_cleanly(n)


def test_keys_expired_key_is_401(ctx):
    n = ctx.node()
    k = create(n, {"user_id": "alice", "expires_in": 60})["key"]
    assert models(n, k).status == 200
    r = n.post("/v1/test/clock", {"offset_ms": 120000}, headers=n.auth())
    assert r.status == 200, r
    r = models(n, k)
    assert r.status == 401, r
    assert echo(n, k).status == 401
    # A key made now, on the moved clock, still works.
    assert models(n, create(n, {"user_id": "alice", "expires_in": "60s"})["key"]).status == 200


def test_keys_user_key_on_admin_route_is_403(ctx):
    n = ctx.node()
    user = create(n, {"user_id": "alice", "roles": ["dev"]})
    admin = create(n, {"user_id": "root", "roles": ["admin"]})
    r = n.get("/v1/admin/keys", headers=bearer(user["key"]))
    assert r.status == 403, r
    r = n.post("/v1/admin/keys", {"user_id": "mallory", "roles": ["admin"]},
               headers=bearer(user["key"]))
    assert r.status == 403, r
    r = n.request("DELETE", f"/v1/admin/keys/{admin['id']}", headers=bearer(user["key"]))
    assert r.status == 403, r
    r = n.get("/v1/admin/keys", headers=bearer(admin["key"]))
    assert r.status == 200, r
    assert sorted(k["user_id"] for k in r.json()["keys"]) == ["alice", "root"]
    # The admin role can use the whole API: make, and revoke, a key.
    r = n.post("/v1/admin/keys", {"user_id": "carol"}, headers=bearer(admin["key"]))
    assert r.status == 201, r
    r = n.request("DELETE", f"/v1/admin/keys/{r.json()['id']}", headers=bearer(admin["key"]))
    assert r.status == 200, r
    stop_cleanly(n)


# --- the command line ---

def test_keys_cli_round_trip(ctx):
    n = ctx.node()
    rc, out, err = run_dagi("keys", "create", "--user", "alice", "--team", "core", "--role", "dev",
                            "--role", "ops", "--name", "ci runner", "--expires", "30d",
                            "-d", n.data_dir)
    assert rc == 0, err
    lines = out.splitlines()
    key = lines[0]
    assert KEY_RE.match(key), out
    kid = key.split("_")[1]
    assert lines[1] == f"id: {kid}", out
    assert out.count(key) == 1
    assert models(n, key).status == 200

    rc, out2, err2 = run_dagi("keys", "create", "--user", "bob", "-d", n.data_dir)
    assert rc == 0, err2
    bob_key = out2.splitlines()[0]
    assert KEY_RE.match(bob_key) and bob_key != key

    rc, listed, err = run_dagi("keys", "list", "-d", n.data_dir)
    assert rc == 0, err
    head = listed.splitlines()[0].split()
    assert head == ["ID", "USER", "TEAM", "ROLES", "NAME", "CREATED", "EXPIRES", "REVOKED"], listed
    row = next(line for line in listed.splitlines() if line.startswith(kid))
    assert "alice" in row and "core" in row and "dev,ops" in row and "ci runner" in row, row
    assert row.rstrip().endswith("-"), row  # not revoked
    rc, only_bob, _ = run_dagi("keys", "list", "--user", "bob", "-d", n.data_dir)
    assert rc == 0 and kid not in only_bob and "bob" in only_bob, only_bob

    rc, out, err = run_dagi("keys", "revoke", kid, "-d", n.data_dir)
    assert rc == 0 and kid in out, (out, err)
    assert models(n, key).status == 401
    assert models(n, bob_key).status == 200
    rc, after, _ = run_dagi("keys", "list", "--user", "alice", "-d", n.data_dir)
    row = next(line for line in after.splitlines() if line.startswith(kid))
    assert not row.rstrip().endswith(" -"), row  # a revocation time now

    api = list_keys(n).body.decode()
    assert_secret_absent(n, key, listed, only_bob, after, api)
    assert_secret_absent(n, bob_key, listed, only_bob, after, api)
    stop_cleanly(n)


def test_keys_cli_errors(ctx):
    n = ctx.node()
    for args in (("keys",), ("keys", "frob"), ("keys", "create"), ("keys", "create", "-d",
                 n.data_dir), ("keys", "revoke"), ("keys", "revoke", "not-an-id"),
                 ("keys", "list", "extra"), ("keys", "list", "--team", "t"),
                 ("keys", "revoke", "aaaaaaaaaaaa", "bbbbbbbbbbbb")):
        rc, _, err = run_dagi(*args)
        assert rc == 2, (args, rc, err)
    for args in (("keys", "--help"), ("keys", "create", "--help"), ("keys", "list", "--help"),
                 ("keys", "revoke", "--help")):
        rc, out, _ = run_dagi(*args)
        assert rc == 0 and "usage: dagi keys" in out, (args, out)
    # The node answers an error: exit 1 with its message.
    rc, _, err = run_dagi("keys", "revoke", "aaaaaaaaaaaa", "-d", n.data_dir)
    assert rc == 1 and "unknown key id" in err, err
    rc, _, err = run_dagi("keys", "create", "--user", "u", "--expires", "soon", "-d", n.data_dir)
    assert rc == 1 and "expires_in" in err, err
    rc, _, err = run_dagi("keys", "create", "--user", "u", "--role", "no spaces", "-d",
                          n.data_dir)
    assert rc == 1 and "roles[0]" in err, err
    rc, _, err = run_dagi("keys", "list", "-d", "/nonexistent-dagi")
    assert rc == 1 and "no node is running" in err, err
    assert list_keys(n).json()["keys"] == []


# --- a client that leaves ---

def test_keys_client_gone_mid_request(ctx):
    """Requests whose clients hang up while the keystore works on the pool:
    nothing crashes or leaks (the sanitized run checks), the node serves on."""
    n = ctx.node()
    body = json.dumps({"user_id": "ghost"}).encode()
    for i in range(30):
        s = n.raw_socket()
        if i % 2:
            req = (b"POST /v1/admin/keys HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   b"Authorization: Bearer " + n.admin_key.encode() +
                   f"\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        else:
            req = (b"GET /v1/admin/keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                   n.admin_key.encode() + b"\r\n\r\n")
        s.sendall(req)
        s.close()
    time.sleep(0.2)
    assert n.get("/healthz").status == 200
    assert create(n, {"user_id": "after"})["key"]
    # Keys made for clients that left exist, and can be listed and revoked.
    ghosts = list_keys(n, "ghost").json()["keys"]
    assert len(ghosts) <= 15
    stop_cleanly(n)
