"""Streaming: SSE and drain, a 100 MB upload with flat memory, TLS."""
import signal
import ssl
import threading
import time

import harness
from harness import margin, make_self_signed, wait_until


def read_sse(resp, limit=None):
    events = []
    cur = {}
    for raw in resp:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if cur:
                events.append(cur)
                cur = {}
                if limit and len(events) >= limit:
                    break
            continue
        k, _, v = line.partition(":")
        cur[k] = v.lstrip(" ")
    return events


def test_sse_streams_events(ctx):
    n = ctx.node()
    conn = n.connection()
    conn.request("GET", "/v1/test/sse?n=5&interval_ms=20", headers=n.auth())
    r = conn.getresponse()
    assert r.status == 200
    assert r.getheader("content-type").startswith("text/event-stream")
    events = read_sse(r)
    assert [e["event"] for e in events] == ["tick"] * 5 + ["done"]
    assert events[4]["data"] == '{"seq":4}'


def test_sigterm_lets_a_long_sse_response_finish(ctx):
    n = ctx.node(config="http:\n  drain_timeout: 20s\n")
    conn = n.connection(timeout=30)
    conn.request("GET", "/v1/test/sse?n=20&interval_ms=100", headers=n.auth())
    r = conn.getresponse()
    first = read_sse(r, limit=2)
    assert len(first) == 2
    n.signal(signal.SIGTERM)
    rest = read_sse(r)
    assert [e["event"] for e in rest][-1] == "done"
    assert len(first) + len(rest) == 21
    assert n.wait(10) == 0


def test_drain_timeout_cuts_streams_that_do_not_finish(ctx):
    n = ctx.node(config="http:\n  drain_timeout: 500ms\n")
    conn = n.connection(timeout=30)
    conn.request("GET", "/v1/test/sse?n=1000&interval_ms=100", headers=n.auth())
    r = conn.getresponse()
    read_sse(r, limit=1)
    t0 = time.monotonic()
    n.signal(signal.SIGTERM)
    assert n.wait(10) == 0
    assert time.monotonic() - t0 < margin(4)


def test_listener_closes_while_draining(ctx):
    n = ctx.node(config="http:\n  drain_timeout: 20s\n")
    conn = n.connection(timeout=30)
    conn.request("GET", "/v1/test/sse?n=30&interval_ms=100", headers=n.auth())
    r = conn.getresponse()
    read_sse(r, limit=1)
    n.signal(signal.SIGTERM)
    # New connections are no longer accepted once draining starts.
    def refused():
        try:
            n.get("/readyz", timeout=1)
            return False
        except OSError:
            return True
    wait_until(refused, 5, "the listener to close")
    read_sse(r)
    assert n.wait(10) == 0


def chunks(total, size=1 << 20):
    block = bytes(range(256)) * (size // 256)
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        yield block[:n]
        sent += n


def test_100mb_body_streams_with_flat_memory(ctx):
    n = ctx.node()
    total = 100 * 1024 * 1024
    conn = n.connection(timeout=120)
    conn.request("POST", "/v1/test/sink", body=chunks(total),
                 headers={**n.auth(), "Content-Type": "application/octet-stream"},
                 encode_chunked=True)
    r = conn.getresponse()
    body = r.read()
    assert r.status == 200, body
    import json
    result = json.loads(body)
    assert result["bytes"] == total
    if ctx.sanitized:
        return  # ASan holds freed memory back: RSS says nothing there
    # Flat: reading 100 MB grows the process by a few MB at most.
    assert result["peak_rss_kb"] - result["start_rss_kb"] < 8 * 1024, result
    assert result["peak_rss_kb"] < 30 * 1024, result


def test_100mb_body_with_content_length(ctx):
    n = ctx.node()
    total = 100 * 1024 * 1024
    conn = n.connection(timeout=120)
    conn.putrequest("POST", "/v1/test/sink")
    conn.putheader("Authorization", "Bearer " + n.admin_key)
    conn.putheader("Content-Length", str(total))
    conn.endheaders()
    for c in chunks(total):
        conn.send(c)
    r = conn.getresponse()
    import json
    result = json.loads(r.read())
    assert r.status == 200 and result["bytes"] == total
    if not ctx.sanitized:
        assert result["peak_rss_kb"] - result["start_rss_kb"] < 8 * 1024, result


def test_https_with_a_self_signed_certificate(ctx):
    import tempfile
    d = tempfile.mkdtemp(prefix="dagi-tls-")
    cert, key = make_self_signed(d)
    n = ctx.node(config=f"http:\n  tls:\n    cert: {cert}\n    key: {key}\n", start=False)
    n.scheme = "https"
    n.tls_context = ssl.create_default_context(cafile=cert)
    n.start()
    r = n.get("/healthz")
    assert r.status == 200
    r = n.post("/v1/test/echo", {"tls": True}, headers=n.auth())
    assert r.json() == {"echo": {"tls": True}}
    # Plain HTTP on the TLS port gets nowhere.
    s = n.raw_socket()
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    s.settimeout(margin(5))
    try:
        data = s.recv(100)
    except OSError:
        data = b""
    assert not data.startswith(b"HTTP/1.1 200")
