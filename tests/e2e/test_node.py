"""The node's lifecycle: start, readiness, metrics, the admin key, reload, stop."""
import os
import signal
import stat
import time

from harness import margin, wait_until, run_dagi


def test_start_ready_metrics_admin_key(ctx):
    n = ctx.node()
    assert n.get("/healthz").status == 200
    r = n.get("/readyz")
    assert r.status == 200 and r.json()["status"] == "ready"
    m = n.get("/metrics")
    assert m.status == 200
    assert m.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = m.body.decode()
    assert "# TYPE dagi_http_requests_total counter" in text
    assert "# TYPE dagi_process_resident_memory_bytes gauge" in text
    # The key file: 0600, and its content was printed exactly once.
    path = os.path.join(n.data_dir, "admin.key")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    key = n.admin_key
    assert key.startswith("dagi_admin_") and len(key) > 40
    assert n.stdout_text().count(key) == 1
    # ...and never logged.
    assert key not in n.stderr_text()
    assert n.stop() == 0
    assert not os.path.exists(os.path.join(n.data_dir, "http.addr"))


def test_admin_key_is_shown_only_on_first_start(ctx):
    n = ctx.node()
    key = n.admin_key
    assert n.stop() == 0
    n.start()
    assert n.admin_key == key
    assert n.stdout_text().count(key) == 1  # both starts append to one stdout log
    r = n.get("/v1/admin/status", headers=n.auth())
    assert r.status == 200, r
    assert r.json()["version"]


def test_admin_routes_need_the_key(ctx):
    n = ctx.node()
    r = n.get("/v1/admin/status")
    assert r.status == 401
    assert r.json()["error"]["code"] == "unauthorized"
    assert "bearer" in r.headers.get("www-authenticate", "").lower()
    r = n.get("/v1/admin/status", headers={"Authorization": "Bearer dagi_admin_wrong"})
    assert r.status == 401
    r = n.get("/v1/admin/status", headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert r.status == 401
    assert n.get("/v1/admin/status", headers=n.auth()).status == 200


def test_sigint_stops_cleanly(ctx):
    n = ctx.node()
    n.signal(signal.SIGINT)
    assert n.wait(10) == 0
    assert any(line.get("message") == "stopped" for line in n.log_lines())


def test_two_nodes_cannot_share_a_data_dir(ctx):
    a = ctx.node()
    b = ctx.node(tmp=None, start=False)
    b.data_dir = a.data_dir
    b.start(wait_ready=False)
    assert b.wait(10) == 1
    assert "in use by another dagi process" in b.stderr_text()


def test_logs_are_json_lines(ctx):
    n = ctx.node()
    n.get("/healthz")
    n.stop()
    lines = [l for l in n.stderr_text().splitlines() if l.strip()]
    assert lines
    import json
    for line in lines:
        obj = json.loads(line)
        for k in ("time", "level", "role", "message"):
            assert k in obj, (k, line)


def test_sighup_reloads_and_bad_config_is_refused(ctx):
    n = ctx.node(config="log:\n  level: info\nhttp:\n  max_body: 1KB\n")
    big = {"x": "y" * 2000}
    assert n.post("/v1/test/echo", big, headers=n.auth()).status == 413
    with open(n.config_path, "w") as f:
        f.write("log:\n  level: info\nhttp:\n  max_body: 1MB\n")
    n.signal(signal.SIGHUP)
    wait_until(lambda: n.post("/v1/test/echo", big, headers=n.auth()).status == 200, 5,
               "reload to raise max_body")
    # A broken file on reload: refused, the old configuration stays.
    with open(n.config_path, "w") as f:
        f.write("http:\n  max_body: lots\n")
    r = n.post("/v1/admin/reload", headers=n.auth())
    assert r.status == 400, r
    assert "http.max_body" in r.json()["error"]["message"]
    assert n.post("/v1/test/echo", big, headers=n.auth()).status == 200
    assert n.get("/readyz").status == 200


def test_version_and_help(ctx):
    rc, out, _ = run_dagi("version")
    assert rc == 0 and out.startswith("dagi ")
    rc, out, _ = run_dagi("--help")
    assert rc == 0 and "node" in out and "config check" in out
    rc, out, _ = run_dagi("node", "--help")
    assert rc == 0 and "--listen" in out and "--data-dir" in out
    rc, _, err = run_dagi("bogus")
    assert rc == 2 and "unknown command" in err
    rc, _, err = run_dagi("node", "--bogus")
    assert rc == 2


def test_business_clock_can_be_moved_by_tests(ctx):
    n = ctx.node()
    before = n.get("/v1/test/clock", headers=n.auth()).json()["now_ms"]
    day = 24 * 3600 * 1000
    r = n.post("/v1/test/clock", {"offset_ms": day}, headers=n.auth())
    assert r.status == 200 and r.json()["offset_ms"] == day
    assert r.json()["now_ms"] - before >= day
    r = n.post("/v1/test/clock", {"offset_ms": "soon"}, headers=n.auth())
    assert r.status == 400 and r.json()["error"]["field"] == "offset_ms"


def test_release_build_has_no_test_routes(ctx):
    """Run against the release binary too (scripts/test.sh): nothing test-only ships."""
    n = ctx.node()
    status = n.get("/v1/admin/status", headers=n.auth()).json()
    r = n.post("/v1/test/echo", {"x": 1}, headers=n.auth())
    if status["test_hooks"]:
        assert r.status == 200
    else:
        assert r.status == 404, r
        rc, out, _ = run_dagi("version")
        assert "test hooks" not in out
        # The release build links jemalloc (bench/agents_bench.py says why).
        assert "(malloc: jemalloc)" in out, out
