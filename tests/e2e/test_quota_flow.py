"""Budgets on the request path: the router reserves max_tokens before the
model is asked and settles to the real usage after; over budget is a 429
naming the budget and its reset, with quota.* events; windows follow the
business clock."""
import concurrent.futures
import json
import os
import tempfile

from harness import embedded_nats_client, margin, stream_messages, wait_until
from test_router import config, behave
from test_swapper import start_fake


def quota_node(ctx, budgets):
    fake, addr = start_fake(ctx)
    d = tempfile.mkdtemp(prefix="dagi-e2e-quota-")
    path = os.path.join(d, "quotas.yml")
    with open(path, "w") as f:
        f.write(budgets)
    n = ctx.node(config=config(addr), env={"DAGI_REGISTRY_QUOTAS": path})
    n.fake, n.fake_addr = fake, addr
    return n


def user_key(n, user):
    r = n.post("/v1/admin/keys", {"user_id": user, "roles": ["user"]}, headers=n.auth())
    assert r.status == 201, r
    return {"Authorization": "Bearer " + r.json()["key"]}


def infer(n, h, **body):
    body.setdefault("prompt", "hello")
    return n.post("/v1/agents/helion/infer", body, headers=h, timeout=120)


def usage(n, user):
    r = n.get(f"/v1/quota/usage?user={user}&agent=helion", headers=n.auth())
    assert r.status == 200, r
    return {b["id"]: b for b in r.json()["budgets"]}


def events(n, subject):
    c = embedded_nats_client(n)
    try:
        return [m[2] for m in stream_messages(c, "DAGI_EVENTS", subject)]
    finally:
        c.close()


def close(n):
    n.fake.terminate()
    n.fake.wait()


def test_the_sixth_of_five_a_day_is_429_and_the_window_resets(ctx):
    n = quota_node(ctx, """
budgets:
  - {id: five-a-day, per: user, match: "*", window: day, requests: 5}
""")
    try:
        h = user_key(n, "olena")
        for _ in range(5):
            assert infer(n, h).status == 200
        r = infer(n, h)
        assert r.status == 429, r
        e = r.json()["error"]
        assert e["type"] == "quota_exceeded" and e["budget"] == "five-a-day", e
        assert e["limit"] == 5 and e["window"] == "day" and e["reset_at"].endswith("T00:00:00.000Z")
        assert int(r.headers["retry-after"]) >= 1
        blocked = wait_until(lambda: events(n, "quota.blocked.user_olena"), 10,
                             "quota.blocked in the stream")
        assert blocked[0]["data"]["budget"] == "five-a-day", blocked
        # Tomorrow (the business clock): the window rolled over.
        now = n.get("/v1/test/clock", headers=n.auth()).json()["now_ms"]
        left = e["reset_at_ms"] - now
        n.post("/v1/test/clock", {"offset_ms": left + 1000}, headers=n.auth())
        assert infer(n, h).status == 200
        wait_until(lambda: events(n, "quota.reset.user_olena"), 10, "quota.reset in the stream")
        assert usage(n, "user:olena")["five-a-day"]["requests"]["used"] == 1
    finally:
        close(n)


def test_parallel_requests_never_spend_beyond_what_is_held(ctx):
    n = quota_node(ctx, """
budgets:
  - {id: ten-k, per: user, match: "*", window: day, tokens: 10000}
""")
    try:
        h = user_key(n, "petro")
        # Every answer takes a while, so all 50 are in flight together: each
        # holds 1,000 tokens, so the budget admits exactly ten.
        behave(n.fake_addr, model="*", latency_ms=int(margin(2) * 1000))
        with concurrent.futures.ThreadPoolExecutor(50) as pool:
            statuses = list(pool.map(lambda _: infer(n, h, max_tokens=1000).status, range(50)))
        assert statuses.count(200) == 10 and statuses.count(429) == 40, statuses
        u = usage(n, "user:petro")["ten-k"]
        assert u["tokens"]["held"] == 0, u
        assert 0 < u["tokens"]["used"] <= 10000, u
    finally:
        close(n)


def test_streamed_usage_is_counted_exactly(ctx):
    n = quota_node(ctx, """
budgets:
  - {id: tokens, per: user, match: "*", window: day, tokens: 1000000}
""")
    try:
        h = user_key(n, "ivan")
        r = n.request("POST", "/v1/chat/completions", json.dumps({
            "model": "helion", "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "count my tokens please"}]}).encode(),
            headers=dict(h, **{"Content-Type": "application/json"}), timeout=60)
        assert r.status == 200, r
        chunks = [json.loads(line[6:]) for line in r.body.decode().splitlines()
                  if line.startswith("data: {")]
        reported = [c["usage"] for c in chunks if c.get("usage")]
        assert reported, chunks
        total = reported[-1]["prompt_tokens"] + reported[-1]["completion_tokens"]
        assert total > 0
        u = wait_until(lambda: (lambda b: b if b["tokens"]["held"] == 0 else None)(
            usage(n, "user:ivan")["tokens"]), 10, "the settle")
        assert u["tokens"]["used"] == total, (u, reported)
        consumed = wait_until(lambda: events(n, "quota.consumed.user_ivan"), 10,
                              "quota.consumed in the stream")
        assert consumed[0]["data"]["estimated"] is False, consumed
    finally:
        close(n)


def test_telegram_over_budget_gets_a_short_message(ctx):
    from test_telegram import TG, BOT, make_update, text_of
    d = tempfile.mkdtemp(prefix="dagi-e2e-quota-")
    path = os.path.join(d, "quotas.yml")
    with open(path, "w") as f:
        f.write("budgets:\n  - {id: one-a-day, per: user, match: \"*\", window: day, "
                "requests: 1}\n")
    t = TG(ctx, env={"DAGI_REGISTRY_QUOTAS": path})
    try:
        t.deliver(make_update("text", "перше питання", bot=BOT))
        t.wait_sent(1)
        calls = t.model_calls()
        t.deliver(make_update("text", "друге питання", bot=BOT))
        sent = t.wait_sent(2)
        notice = text_of(sent[1])
        assert "1" in notice and "UTC" in notice, notice
        assert t.model_calls() == calls, "the model was asked over budget"
        t.wait_handled("quota")
    finally:
        t.close()
