"""The identity graph through the real binary: the admin API (/v1/users,
/v1/teams and below) and the `dagi users|teams|members` commands against a
running `dagi node` - create, list, page, map chats, delete with cascades;
the 400 / 404 / 409 bodies naming their field; 403 for a key without the
admin role; and nothing of a display name in the log."""
import json

from harness import run_dagi, wait_until


def bearer(key):
    return {"Authorization": "Bearer " + key}


def call(n, method, path, body=None, status=200, headers=None):
    r = n.request(method, path, body=body, headers=headers or n.auth())
    assert r.status == status, (method, path, body, r)
    return r.json()


def error_of(n, method, path, body=None, status=400, headers=None):
    """The error object of an answer that must be `status`."""
    doc = call(n, method, path, body, status, headers)
    assert set(doc) == {"error"}, doc
    return doc["error"]


def stop_cleanly(n):
    assert n.stop() == 0
    log = n.stderr_text()
    assert "Sanitizer" not in log and "runtime error" not in log, log[-3000:]


# --- the admin API ---

def test_identity_api_round_trip(ctx):
    n = ctx.node()
    team = call(n, "POST", "/v1/teams", {"id": "energy", "name": "Energy Union",
                                         "attributes": {"tz": "Europe/Kyiv"}}, 201)
    assert (team["id"], team["name"], team["plan"], team["attributes"]) == \
        ("energy", "Energy Union", "free", {"tz": "Europe/Kyiv"})
    assert team["created_at_ms"] == team["updated_at_ms"] > 0
    alice = call(n, "POST", "/v1/users", {"id": "alice", "name": "Олена"}, 201)
    assert (alice["id"], alice["principal"], alice["name"], alice["attributes"]) == \
        ("alice", "user:alice", "Олена", {})
    tg = call(n, "POST", "/v1/users", {"id": "tg:4242"}, 201)
    assert tg["principal"] == "tg:4242"

    m = call(n, "POST", "/v1/teams/energy/members", {"user": "alice", "role": "owner"}, 201)
    assert (m["team"], m["user"], m["principal"], m["role"]) == \
        ("energy", "alice", "user:alice", "owner")
    m = call(n, "POST", "/v1/teams/energy/members", {"user": "tg:4242"}, 201)
    assert m["role"] == "member"  # the default
    members = call(n, "GET", "/v1/teams/energy/members")
    assert [(x["user"], x["role"]) for x in members["members"]] == \
        [("alice", "owner"), ("tg:4242", "member")]
    assert members["next_cursor"] is None and members["team"] == "energy"
    teams = call(n, "GET", "/v1/users/alice/teams")
    assert [(x["team"], x["role"]) for x in teams["teams"]] == [("energy", "owner")]

    chat = call(n, "POST", "/v1/teams/energy/chats", {"chat_id": -1001234567890}, 201)
    assert (chat["chat_id"], chat["team"], chat["agent"]) == (-1001234567890, "energy", None)
    # the same chat again, for one agent: changed, not made
    chat = call(n, "POST", "/v1/teams/energy/chats",
                {"chat_id": "-1001234567890", "agent": "helion"}, 200)
    assert chat["agent"] == "helion" and chat["created_at_ms"] <= chat["updated_at_ms"]
    chats = call(n, "GET", "/v1/teams/energy/chats")["chats"]
    assert [(c["chat_id"], c["agent"]) for c in chats] == [(-1001234567890, "helion")]

    p = call(n, "POST", "/v1/teams/energy/projects", {"id": "solar", "name": "Solar"}, 201)
    assert (p["id"], p["team"], p["name"]) == ("solar", "energy", "Solar")
    assert [x["id"] for x in call(n, "GET", "/v1/teams/energy/projects")["projects"]] == ["solar"]

    # update: what is given changes, the rest stays
    u = call(n, "PATCH", "/v1/users/alice", {"attributes": {"lang": "uk"}})
    assert (u["name"], u["attributes"]) == ("Олена", {"lang": "uk"})
    t = call(n, "PATCH", "/v1/teams/energy", {"plan": "pro"})
    assert (t["plan"], t["name"]) == ("pro", "Energy Union")
    assert call(n, "GET", "/v1/teams/energy")["plan"] == "pro"
    assert call(n, "GET", "/v1/users/user:alice")["id"] == "alice"  # the principal names it

    # delete: a member, a chat, a user (with its memberships), a team (with the rest)
    r = call(n, "DELETE", "/v1/teams/energy/members/tg:4242")
    assert r == {"team": "energy", "user": "tg:4242", "removed": True}
    r = call(n, "DELETE", "/v1/teams/energy/chats/-1001234567890")
    assert r == {"chat_id": -1001234567890, "team": "energy", "unmapped": True}
    assert call(n, "GET", "/v1/teams/energy/chats")["chats"] == []
    assert call(n, "DELETE", "/v1/users/alice") == {"id": "alice", "deleted": True}
    assert call(n, "GET", "/v1/teams/energy/members")["members"] == []
    call(n, "POST", "/v1/teams/energy/chats", {"chat_id": 77}, 201)
    assert call(n, "DELETE", "/v1/teams/energy") == {"id": "energy", "deleted": True}
    error_of(n, "GET", "/v1/teams/energy", status=404)
    error_of(n, "GET", "/v1/teams/energy/projects", status=404)
    # the chat went with the team: it may be mapped anew elsewhere
    call(n, "POST", "/v1/teams", {"id": "other"}, 201)
    call(n, "POST", "/v1/teams/other/chats", {"chat_id": 77}, 201)
    assert call(n, "GET", "/v1/users/tg:4242")["id"] == "tg:4242"  # users stay

    # no display name in the log (users' data, not operations')
    assert "Олена" not in n.stderr_text()
    stop_cleanly(n)


def test_identity_api_pages(ctx):
    n = ctx.node()
    for i in range(7):
        call(n, "POST", "/v1/users", {"id": f"user{i}"}, 201)
    seen, cursor, pages = [], None, 0
    while True:
        path = "/v1/users?limit=3" + (f"&cursor={cursor}" if cursor else "")
        doc = call(n, "GET", path)
        pages += 1
        seen += [u["id"] for u in doc["users"]]
        cursor = doc["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"user{i}" for i in range(7)] and pages == 3
    for q in ("limit=0", "limit=1001", "limit=x", "limit="):
        assert error_of(n, "GET", "/v1/users?" + q)["field"] == "limit", q
    assert error_of(n, "GET", "/v1/users?cursor=not%20one")["field"] == "cursor"
    assert error_of(n, "GET", "/v1/teams?cursor=UPPER")["field"] == "cursor"


def test_identity_api_errors_name_the_field(ctx):
    n = ctx.node()
    call(n, "POST", "/v1/teams", {"id": "core"}, 201)
    call(n, "POST", "/v1/users", {"id": "bob"}, 201)
    bad = [
        ("/v1/users", {}, "id"),
        ("/v1/users", {"id": 5}, "id"),
        ("/v1/users", {"id": "has space"}, "id"),
        ("/v1/users", {"id": "tg:abc"}, "id"),
        ("/v1/users", {"id": "u" * 129}, "id"),
        ("/v1/users", {"id": "ok", "name": "n" * 257}, "name"),
        ("/v1/users", {"id": "ok", "name": "bell\u0007"}, "name"),
        ("/v1/users", {"id": "ok", "attributes": [1]}, "attributes"),
        ("/v1/users", {"id": "ok", "attributes": {"k": "v" * 9000}}, "attributes"),
        ("/v1/users", {"id": "ok", "role": "admin"}, "role"),  # not a field of a user
        ("/v1/teams", {"id": "Not-A-Slug"}, "id"),
        ("/v1/teams", {"id": "ok", "plan": "Gold Plan"}, "plan"),
        ("/v1/teams/core/members", {}, "user"),
        ("/v1/teams/core/members", {"user": "bob", "role": "root"}, "role"),
        ("/v1/teams/core/members", {"user": "bad id"}, "user"),
        ("/v1/teams/core/chats", {}, "chat_id"),
        ("/v1/teams/core/chats", {"chat_id": 0}, "chat_id"),
        ("/v1/teams/core/chats", {"chat_id": "12ab"}, "chat_id"),
        ("/v1/teams/core/chats", {"chat_id": 1.5}, "chat_id"),
        ("/v1/teams/core/chats", {"chat_id": 5, "agent": "no spaces"}, "agent"),
        ("/v1/teams/core/projects", {"id": "P 1"}, "id"),
    ]
    for path, body, field in bad:
        e = error_of(n, "POST", path, body, 400)
        assert e["field"] == field, (path, body, e)
        assert e["message"], e
    e = error_of(n, "PATCH", "/v1/users/bob", {}, 400)
    assert "nothing to change" in e["message"], e
    assert error_of(n, "PATCH", "/v1/teams/core", {"plan": 7}, 400)["field"] == "plan"
    r = n.request("POST", "/v1/users", body=b"{not json",
                  headers={**n.auth(), "Content-Type": "application/json"})
    assert r.status == 400, r

    # unknown: 404 naming what is missing
    missing = [
        ("GET", "/v1/users/carol", None, "id"),
        ("GET", "/v1/users/not%20an%20id", None, "id"),
        ("PATCH", "/v1/users/carol", {"name": "x"}, "id"),
        ("DELETE", "/v1/users/carol", None, "id"),
        ("GET", "/v1/users/carol/teams", None, "user"),
        ("GET", "/v1/teams/nope", None, "id"),
        ("DELETE", "/v1/teams/nope", None, "id"),
        ("GET", "/v1/teams/nope/members", None, "team"),
        ("POST", "/v1/teams/nope/members", {"user": "bob"}, "team"),
        ("POST", "/v1/teams/core/members", {"user": "carol"}, "user"),
        ("DELETE", "/v1/teams/core/members/bob", None, "user"),
        ("POST", "/v1/teams/nope/chats", {"chat_id": 5}, "team"),
        ("DELETE", "/v1/teams/core/chats/5", None, "chat_id"),
        ("DELETE", "/v1/teams/core/chats/x", None, "chat_id"),
        ("POST", "/v1/teams/nope/projects", {"id": "p"}, "team"),
    ]
    for method, path, body, field in missing:
        e = error_of(n, method, path, body, 404)
        assert e["field"] == field, (method, path, e)

    # duplicates: 409
    assert error_of(n, "POST", "/v1/users", {"id": "bob"}, 409)["field"] == "id"
    assert error_of(n, "POST", "/v1/teams", {"id": "core"}, 409)["field"] == "id"
    call(n, "POST", "/v1/teams/core/members", {"user": "bob"}, 201)
    e = error_of(n, "POST", "/v1/teams/core/members", {"user": "bob", "role": "admin"}, 409)
    assert e["field"] == "user" and "already a member" in e["message"], e
    call(n, "POST", "/v1/teams", {"id": "art"}, 201)
    call(n, "POST", "/v1/teams/core/chats", {"chat_id": 5}, 201)
    e = error_of(n, "POST", "/v1/teams/art/chats", {"chat_id": 5}, 409)
    assert e["field"] == "chat_id" and "core" in e["message"], e
    # a chat is unmapped only by its own team
    error_of(n, "DELETE", "/v1/teams/art/chats/5", status=404)
    call(n, "POST", "/v1/teams/core/projects", {"id": "p1"}, 201)
    assert error_of(n, "POST", "/v1/teams/art/projects", {"id": "p1"}, 409)["field"] == "id"
    stop_cleanly(n)


def test_identity_api_needs_admin(ctx):
    n = ctx.node()
    key = call(n, "POST", "/v1/admin/keys", {"user_id": "alice", "roles": ["dev"]}, 201)["key"]
    admin = call(n, "POST", "/v1/admin/keys", {"user_id": "root", "roles": ["admin"]}, 201)["key"]
    for method, path, body in [("GET", "/v1/users", None), ("POST", "/v1/users", {"id": "x"}),
                               ("GET", "/v1/teams", None), ("DELETE", "/v1/teams/core", None),
                               ("POST", "/v1/teams/core/members", {"user": "x"}),
                               ("GET", "/v1/teams/core/chats", None)]:
        r = n.request(method, path, body=body, headers=bearer(key))
        assert r.status == 403, (method, path, r)
        assert n.request(method, path, body=body, headers={}).status == 401, (method, path)
    assert call(n, "GET", "/v1/users", headers=bearer(key), status=403)["error"]
    # the admin role may
    call(n, "POST", "/v1/users", {"id": "made-by-role"}, 201, headers=bearer(admin))
    assert [u["id"] for u in call(n, "GET", "/v1/users")["users"]] == ["made-by-role"]
    # every route is in the gate's table as an admin route
    routes = call(n, "GET", "/v1/admin/routes")["routes"]
    mine = [r for r in routes if r["pattern"].startswith(("/v1/users", "/v1/teams"))]
    assert len(mine) == 19 and all(r["auth"] == "admin" for r in mine), mine


def test_identity_audited(ctx):
    """Every change leaves an audit event (service identity) naming its
    subject, with ids and roles only; reads leave none."""
    n = ctx.node()
    call(n, "POST", "/v1/teams", {"id": "core"}, 201)
    call(n, "POST", "/v1/users", {"id": "alice", "name": "Secret Name"}, 201)
    call(n, "POST", "/v1/teams/core/members", {"user": "alice", "role": "admin"}, 201)
    call(n, "POST", "/v1/teams/core/chats", {"chat_id": 9, "agent": "helion"}, 201)
    call(n, "DELETE", "/v1/teams/core/members/alice")
    call(n, "GET", "/v1/users")
    if n.get("/v1/audit", headers=n.auth()).status == 404:
        ctx.skip("this build has no audit role")
    want = ["team_created", "user_created", "member_added", "chat_mapped", "member_removed"]

    def identity_records():
        r = n.get("/v1/audit?service=identity", headers=n.auth())
        rs = r.json().get("records", []) if r.status == 200 else []
        return rs if sorted(x["action"] for x in rs) == sorted(want) else None

    rs = {x["action"]: x for x in wait_until(identity_records, 20, "the identity audit events")}
    assert rs["team_created"]["subject"] == "team:core"
    assert rs["user_created"]["subject"] == "user:alice"
    assert rs["member_added"]["subject"] == "team:core"
    meta = rs["member_added"]["metadata"]
    meta = json.loads(meta) if isinstance(meta, str) else meta
    assert meta == {"user": "user:alice", "role": "admin"}, meta
    assert rs["chat_mapped"]["subject"] == "chat:9"
    dump = json.dumps(list(rs.values()))
    assert "Secret Name" not in dump and "Secret Name" not in n.stderr_text()


# --- the command line ---

def test_identity_cli_round_trip(ctx):
    n = ctx.node()
    d = ("-d", n.data_dir)

    def ok(*args):
        rc, out, err = run_dagi(*args, *d)
        assert rc == 0, (args, rc, out, err)
        return out

    assert "created team core (plan pro)" in ok("teams", "create", "core", "--name", "Core",
                                                "--plan", "pro")
    assert "created user alice (user:alice)" in ok("users", "create", "alice", "--name",
                                                   "Alice A")
    assert "(tg:42)" in ok("users", "create", "tg:42")
    assert "added alice to team core as admin" in ok("members", "add", "core", "alice",
                                                     "--role", "admin")
    assert "as member" in ok("members", "add", "core", "tg:42")
    assert "mapped chat -100500 to team core (agent helion)" in \
        ok("teams", "map-chat", "core", "-100500", "--agent", "helion")

    lines = ok("users", "list").splitlines()
    assert lines[0].split() == ["ID", "PRINCIPAL", "NAME", "CREATED"], lines
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {"alice", "tg:42"} and "Alice A" in rows["alice"], rows
    lines = ok("teams", "list").splitlines()
    assert lines[0].split() == ["ID", "NAME", "PLAN", "CREATED"]
    assert lines[1].split()[:3] == ["core", "Core", "pro"], lines
    members = ok("members", "list", "core").splitlines()
    assert members[0].split() == ["USER", "ROLE", "SINCE"]
    assert [m.split()[:2] for m in members[1:]] == [["alice", "admin"], ["tg:42", "member"]]
    chats = ok("teams", "chats", "core").splitlines()
    assert chats[1].split()[:2] == ["-100500", "helion"], chats
    shown = ok("users", "show", "alice")
    assert "principal:  user:alice" in shown and "core" in shown and "admin" in shown, shown
    shown = ok("teams", "show", "core")
    assert "plan:" in shown and "alice" in shown and "tg:42" in shown, shown

    assert "removed tg:42 from team core" in ok("members", "remove", "core", "tg:42")
    assert "unmapped chat -100500" in ok("teams", "unmap-chat", "core", "-100500")
    assert "no chats mapped" in ok("teams", "chats", "core")
    assert "deleted user alice" in ok("users", "delete", "alice")
    assert "no members" in ok("members", "list", "core")
    assert "deleted team core" in ok("teams", "delete", "core")
    assert "no teams" in ok("teams", "list")
    # the API agrees
    assert call(n, "GET", "/v1/teams")["teams"] == []
    assert [u["id"] for u in call(n, "GET", "/v1/users")["users"]] == ["tg:42"]
    stop_cleanly(n)


def test_identity_cli_errors(ctx):
    n = ctx.node()
    d = ("-d", n.data_dir)
    for args in (("users",), ("users", "frob"), ("users", "create"), ("users", "show"),
                 ("users", "list", "extra"), ("users", "create", "a", "--plan", "p"),
                 ("teams", "map-chat", "core"), ("teams", "create", "x", "--agent", "a"),
                 ("members", "add", "core"), ("members", "list"),
                 ("members", "remove", "core", "a", "b"), ("members", "add", "t", "u",
                                                           "--role")):
        rc, _, err = run_dagi(*args, *d)
        assert rc == 2, (args, rc, err)
    for cmd, verbs in (("users", ("list", "create", "show", "delete")),
                       ("teams", ("list", "create", "show", "delete", "chats", "map-chat",
                                  "unmap-chat")),
                       ("members", ("list", "add", "remove"))):
        rc, out, _ = run_dagi(cmd, "--help")
        assert rc == 0 and f"usage: dagi {cmd}" in out, (cmd, out)
        for v in verbs:
            rc, out, _ = run_dagi(cmd, v, "--help")
            assert rc == 0 and f"dagi {cmd} {v}" in out, (cmd, v, out)
    # the node answers an error: exit 1 with its message
    rc, _, err = run_dagi("users", "show", "nobody", *d)
    assert rc == 1 and "no such user" in err, err
    rc, _, err = run_dagi("teams", "create", "Bad Slug", *d)
    assert rc == 1 and "id:" in err, err
    rc, _, _ = run_dagi("teams", "create", "core", *d)
    assert rc == 0
    rc, _, err = run_dagi("teams", "create", "core", *d)
    assert rc == 1 and "409" in err, err
    rc, _, err = run_dagi("members", "add", "core", "ghost", *d)
    assert rc == 1 and "no such user" in err, err
    rc, _, err = run_dagi("members", "add", "core", "ghost", "--role", "king", *d)
    assert rc == 1 and "role" in err, err
    rc, _, err = run_dagi("teams", "map-chat", "core", "abc", *d)
    assert rc == 1 and "chat_id" in err, err
    rc, _, err = run_dagi("users", "list", "-d", "/nonexistent-dagi")
    assert rc == 1 and "no node is running" in err, err


def test_identity_client_gone_mid_request(ctx):
    """Clients that hang up while their request runs on the pool: nothing
    crashes or leaks (the sanitized run checks), the change stands, the node
    serves on."""
    n = ctx.node()
    call(n, "POST", "/v1/teams", {"id": "core"}, 201)
    key = n.admin_key.encode()
    for i in range(30):
        s = n.raw_socket()
        if i % 2:
            body = json.dumps({"id": f"ghost{i}"}).encode()
            req = (b"POST /v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   b"Authorization: Bearer " + key +
                   f"\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        else:
            req = b"GET /v1/teams/core/members HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + \
                key + b"\r\n\r\n"
        s.sendall(req)
        s.close()
    assert n.get("/healthz").status == 200
    call(n, "POST", "/v1/users", {"id": "after"}, 201)
    ids = {u["id"] for u in call(n, "GET", "/v1/users")["users"]}
    assert "after" in ids and len(ids) <= 16, ids
    stop_cleanly(n)
