"""The HTTP server through the real binary: errors, caps, timeouts, keep-alive."""
import socket
import time

from harness import margin, read_http_response


def test_unknown_route_is_404_json(ctx):
    n = ctx.node()
    r = n.get("/no/such/route")
    assert r.status == 404
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["error"]["code"] == "not_found"


def test_malformed_json_is_400_naming_the_offset(ctx):
    n = ctx.node()
    r = n.post("/v1/test/echo", b'{"a": 1,, "b": 2}',
               headers={**n.auth(), "Content-Type": "application/json"})
    assert r.status == 400, r
    err = r.json()["error"]
    assert err["code"] == "invalid_json"
    assert "offset" in err["message"], err


def test_valid_json_round_trip(ctx):
    n = ctx.node()
    r = n.post("/v1/test/echo", {"привіт": [1, 2, 3]}, headers=n.auth())
    assert r.status == 200
    assert r.json() == {"echo": {"привіт": [1, 2, 3]}}


def test_body_over_cap_is_413_without_reading_the_rest(ctx):
    n = ctx.node(config="http:\n  max_body: 64KB\n")
    s = n.raw_socket()
    # Announce 1 GB, send none of it: the answer must come anyway.
    s.sendall(("POST /v1/test/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               f"Authorization: Bearer {n.admin_key}\r\nContent-Length: 1000000000\r\n\r\n").encode())
    t0 = time.monotonic()
    r = read_http_response(s, timeout=5)
    assert r.status == 413, r
    assert r.json()["error"]["code"] == "payload_too_large"
    assert time.monotonic() - t0 < margin(2)
    s.close()


def test_chunked_body_over_cap_is_413(ctx):
    n = ctx.node(config="http:\n  max_body: 1KB\n")
    s = n.raw_socket()
    s.sendall(("POST /v1/test/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               f"Authorization: Bearer {n.admin_key}\r\nTransfer-Encoding: chunked\r\n\r\n").encode())
    try:
        for _ in range(10):
            s.sendall(b"200\r\n" + b"x" * 0x200 + b"\r\n")
    except OSError:
        pass  # the server may close as soon as it has answered
    r = read_http_response(s, timeout=5)
    assert r.status == 413, r
    s.close()


def test_slow_client_is_cut_by_the_read_timeout(ctx):
    n = ctx.node(config="http:\n  read_timeout: 300ms\n")
    s = n.raw_socket()
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # headers never finish
    t0 = time.monotonic()
    s.settimeout(margin(5))
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    elapsed = time.monotonic() - t0
    assert elapsed < margin(3), elapsed
    assert data.startswith(b"HTTP/1.1 408"), data[:100]
    s.close()
    # The server is still fine.
    assert n.get("/healthz").status == 200


def test_keep_alive_many_requests_one_connection(ctx):
    n = ctx.node()
    conn = n.connection()
    for _ in range(50):
        r = n.get("/healthz", conn=conn)
        assert r.status == 200
    conn.close()


def test_method_not_allowed(ctx):
    n = ctx.node()
    r = n.request("DELETE", "/healthz")
    assert r.status == 405
    assert "GET" in r.headers.get("allow", "")


def test_trace_id_is_returned(ctx):
    n = ctx.node()
    r = n.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert r.headers.get("x-trace-id") == "abc-123"
    r = n.get("/healthz")
    assert len(r.headers.get("x-trace-id", "")) == 32


def test_request_metrics_counted(ctx):
    n = ctx.node()
    for _ in range(3):
        n.get("/no/such/route")
    text = n.get("/metrics").body.decode()
    assert 'dagi_http_requests_total{method="GET",route="unmatched",status="404"} 3' in text, \
        [l for l in text.splitlines() if "requests_total" in l]


def test_prefix_limit_overrides_a_route_cap(ctx):
    # /v1/test/sink accepts 1 TiB by itself; the operator's prefix limit wins.
    n = ctx.node(config="http:\n  limits:\n    - prefix: /v1/test/sink\n      max_body: 1KB\n")
    r = n.post("/v1/test/sink", b"x" * 2048, headers={**n.auth(), "Content-Type": "text/plain"})
    assert r.status == 413, r
    r = n.post("/v1/test/sink", b"x" * 512, headers={**n.auth(), "Content-Type": "text/plain"})
    assert r.status == 200 and r.json()["bytes"] == 512
