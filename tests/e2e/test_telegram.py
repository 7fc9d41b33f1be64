"""Telegram bots through the real binary: the fake Bot API (tests/fake/
fake_telegram.py) delivers updates to dagi's webhook the way Telegram does,
the model is the fake upstream, and the behaviour policy decides before any
model call.  Time-dependent rows (quiet hours, the 15 s duplicate window)
move the node's business clock through the test hooks."""
import datetime
import json
import os
import sys
import time
import urllib.request
import zoneinfo

from harness import run_dagi, wait_until
from test_router import behave, config as router_config
from test_swapper import start_fake

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "fake"))
from fake_telegram import FakeTelegram, make_update  # noqa: E402

TOKEN = "123456:AAF-helion-test-token_0123456789abcdef"
BOT = {"id": 123456, "username": "helion_bot", "first_name": "Helion"}
SECRET = "helion-webhook_secret-1"
ENV = {"HELION_TELEGRAM_BOT_TOKEN": TOKEN, "HELION_TELEGRAM_WEBHOOK_SECRET": SECRET}


def kyiv_offset_ms(hour, minute=0):
    """The business clock offset that makes it hour:minute tomorrow in Kyiv
    (helion's quiet hours are 23:00-07:00 there)."""
    kyiv = zoneinfo.ZoneInfo("Europe/Kyiv")
    now = datetime.datetime.now(kyiv)
    target = (now + datetime.timedelta(days=1)).replace(hour=hour, minute=minute, second=0,
                                                        microsecond=0)
    return int((target.timestamp() - time.time()) * 1000)


def fake_stats(addr):
    with urllib.request.urlopen(f"http://{addr}/_fake/stats", timeout=5) as r:
        return json.loads(r.read())


class TG:
    def __init__(self, ctx, extra="", env=None):
        self.ctx = ctx
        self.fake, self.addr = start_fake(ctx)
        self.tg = FakeTelegram().start()
        self.tg.add_bot(TOKEN, id=BOT["id"], username=BOT["username"],
                        first_name=BOT["first_name"])
        try:
            cfg = router_config(self.addr) + f"telegram:\n  api_base: {self.tg.url}\n" + extra
            # Midday in Kyiv, outside helion's quiet hours, whenever the test runs.
            self.offset = kyiv_offset_ms(12)
            self.node = ctx.node(config=cfg,
                                 env=dict(ENV, DAGI_TEST_CLOCK_OFFSET_MS=str(self.offset),
                                          **(env or {})))
            self.set_webhook()
        except BaseException:
            self.close()
            raise

    def set_webhook(self):
        rc, out, err = run_dagi("telegram", "set-webhook", "helion",
                                f"http://{self.node.addr}/telegram/helion/webhook",
                                "-c", self.node.config_path, env=ENV)
        assert rc == 0, (rc, out, err)
        assert TOKEN not in out + err

    def close(self):
        self.tg.stop()
        self.fake.terminate()
        self.fake.wait()

    def deliver(self, update):
        r = self.tg.deliver(BOT["id"], update)
        assert r.get("status") == 200, r
        return r

    def sent(self):
        return [c for c in self.tg.calls(method="sendMessage") if c.get("ok")]

    def wait_sent(self, n, timeout=20):
        return wait_until(lambda: len(self.sent()) >= n and self.sent(), timeout,
                          f"{n} sendMessage calls")

    def model_calls(self):
        return fake_stats(self.addr).get("requests", 0)

    def updates_metric(self, result):
        m = self.node.get("/metrics").body.decode()
        for line in m.splitlines():
            if line.startswith("dagi_telegram_updates_total{") and \
                    f'result="{result}"' in line and 'agent_id="helion"' in line:
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def decisions(self, level, reason):
        m = self.node.get("/metrics").body.decode()
        want = f'agent_behavior_decisions_total{{agent_id="helion",level="{level}",reason="{reason}"}}'
        for line in m.splitlines():
            if line.startswith(want):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def wait_handled(self, result, n=1, timeout=20):
        wait_until(lambda: self.updates_metric(result) >= n, timeout, f"{n} updates {result}")


def text_of(call):
    return call["params"]["text"]


def test_private_message_gets_one_full_reply(ctx):
    t = TG(ctx)
    try:
        t.deliver(make_update("text", "привіт, що нового?", bot=BOT))
        [call] = t.wait_sent(1)
        assert text_of(call) == "echo: привіт, що нового?", call
        assert call["params"]["chat_id"] == 1001
        t.wait_handled("answered")
        assert t.decisions("FULL", "private") == 1
        assert TOKEN not in t.node.stderr_text()
    finally:
        t.close()


def test_group_rows_of_the_policy(ctx):
    t = TG(ctx)
    try:
        before = t.model_calls()
        # Not addressed: nothing sent, no model call.
        t.deliver(make_update("text", "енергія для всіх", bot=BOT,
                              chat={"id": -1001234567890, "title": "G", "type": "supergroup"}))
        t.wait_handled("silent", 1)
        assert t.decisions("SILENT", "group_not_addressed") == 1
        # Another bot speaking, even to us: nothing (the loop guard).
        t.deliver(make_update("from_bot", "@helion_bot енергія", bot=BOT))
        t.wait_handled("silent", 2)
        assert t.decisions("SILENT", "sender_is_bot") == 1
        assert t.sent() == [] and t.model_calls() == before
        # Mentioned, out of the domain: the ACK text, still no model call.
        t.deliver(make_update("mention", "як справи?", bot=BOT))
        [ack] = t.wait_sent(1)
        assert text_of(ack) == "\U0001F44D", ack
        assert t.model_calls() == before
        assert t.decisions("ACK", "group_addressed_out_of_domain") == 1
        # Mentioned, in the domain (Cyrillic word prefix): a full answer, the
        # mention stripped, sent as a reply to the question.
        u = make_update("mention", "розкажи про Сонячні панелі громади", bot=BOT)
        t.deliver(u)
        full = t.wait_sent(2)[1]
        assert text_of(full) == "echo: розкажи про Сонячні панелі громади", full
        reply = full["params"].get("reply_parameters") or {}
        assert reply.get("message_id") == u["message"]["message_id"], full
        assert t.model_calls() == before + 1
    finally:
        t.close()


def test_same_update_twice_and_same_text_twice_answer_once(ctx):
    t = TG(ctx)
    try:
        u = make_update("text", "one question", bot=BOT)
        t.deliver(u)
        t.deliver(u)  # Telegram's retry of the same update_id
        t.wait_sent(1)
        # The same text again from the same user within 15 s: silent.
        t.deliver(make_update("text", "One  question ", bot=BOT))
        wait_until(lambda: t.decisions("SILENT", "duplicate") >= 1, 20, "the duplicate")
        time.sleep(0.5)
        assert len(t.sent()) == 1, t.sent()
        # After the window it is a new question.
        t.node.post("/v1/test/clock", {"offset_ms": t.offset + 16000}, headers=t.node.auth())
        t.deliver(make_update("text", "one question", bot=BOT))
        t.wait_sent(2)
    finally:
        t.close()


def test_quiet_hours_answer_with_the_ack(ctx):
    t = TG(ctx)
    try:
        r = t.node.post("/v1/test/clock", {"offset_ms": kyiv_offset_ms(1, 30)},
                        headers=t.node.auth())
        assert r.status == 200, r
        before = t.model_calls()
        t.deliver(make_update("text", "ти тут?", bot=BOT))
        [ack] = t.wait_sent(1)
        assert text_of(ack) == "\U0001F44D", ack
        assert t.model_calls() == before
        assert t.decisions("ACK", "private_quiet_hours") == 1
    finally:
        t.close()


def test_wrong_or_missing_secret_is_401_and_nothing_happens(ctx):
    t = TG(ctx)
    try:
        update = make_update("text", "hi", bot=BOT)
        for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"},
                        {"X-Telegram-Bot-Api-Secret-Token": SECRET + "x"}):
            r = t.node.post("/telegram/helion/webhook", update, headers=headers)
            assert r.status == 401, r
            assert r.json()["error"]["code"] == "unauthorized"
        # The original's paths take the same secret.
        r = t.node.post("/helion/telegram/webhook", update, headers={})
        assert r.status == 401, r
        r = t.node.post("/telegram/helion/webhook", update,
                        headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
        assert r.status == 200, r
        t.wait_sent(1)
        assert t.updates_metric("unauthorized") == 4
        assert t.updates_metric("accepted") == 1
        # An agent without a bot answers the same 401: the route does not tell
        # which agents have bots.
        r = t.node.post("/telegram/nobody/webhook", update,
                        headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
        assert r.status == 401, r
    finally:
        t.close()


def test_kill_after_the_200_still_answers_after_restart(ctx):
    # An answer that takes a while, and a short ack_wait so the redelivery
    # comes soon after the restart.
    t = TG(ctx, extra="  answer_timeout: 5s\n")
    try:
        behave(t.addr, model="*", latency_ms=1500)
        t.deliver(make_update("text", "survive this", bot=BOT))
        t.node.kill()  # SIGKILL: nothing is flushed or acked
        assert t.sent() == []
        behave(t.addr, model="*")
        t.node.start()
        [call] = t.wait_sent(1, timeout=90)
        assert text_of(call) == "echo: survive this", call
    finally:
        t.close()


def test_long_answer_is_split_and_429_is_retried(ctx):
    t = TG(ctx)
    try:
        para = ("Сонячна енергія змінює громади. " * 30).strip()
        answer = "\n\n".join([para] * 9)
        assert 8500 < len(answer) < 9500
        behave(t.addr, model="*", reply=answer)
        t.tg.fail("sendMessage", times=1, error_code=429, retry_after=1)
        start = time.monotonic()
        t.deliver(make_update("text", "tell me everything", bot=BOT))
        parts = t.wait_sent(3, timeout=30)
        assert len(parts) == 3, [len(text_of(p)) for p in parts]
        assert all(len(text_of(p).encode("utf-16-le")) // 2 <= 4096 for p in parts)
        # Cut on paragraph boundaries: the parts put back together are the
        # answer, paragraph for paragraph.
        joined = "\n\n".join(text_of(p) for p in parts)
        assert joined == answer
        failed = [c for c in t.tg.calls(method="sendMessage") if c.get("failed")]
        assert len(failed) == 1
        first_ok = t.sent()[0]["time"]
        assert first_ok - failed[0]["time"] >= 0.9, "retried before retry_after"
        assert time.monotonic() - start < 30
    finally:
        t.close()


def test_photo_with_caption_reaches_the_vision_model(ctx):
    t = TG(ctx)
    try:
        t.tg.add_file(TOKEN, "PHOTO-1", "photos/file_1.jpg", b"\xff\xd8\xff\xe0fakejpeg")
        t.deliver(make_update("photo", caption="що на фото?", file_id="PHOTO-1", bot=BOT))
        [call] = t.wait_sent(1)
        assert text_of(call) == "echo: що на фото? [image]", call
        last = fake_stats(t.addr)["last_request"]
        assert last["model"] == "qwen3-vl-8b", last["model"]
        assert [c for c in t.tg.calls(method="getFile") if c.get("ok")]
        # A photo alone is answered too; an edit of a message is not.
        t.tg.add_file(TOKEN, "PHOTO-2", "photos/file_2.jpg", b"\xff\xd8\xff\xe0second")
        t.deliver(make_update("photo", file_id="PHOTO-2", bot=BOT))
        assert text_of(t.wait_sent(2)[1]) == "echo: [image]"
        edited = make_update("text", "edited text", bot=BOT)
        edited["edited_message"] = dict(edited.pop("message"), edit_date=int(time.time()))
        t.deliver(edited)
        t.wait_handled("ignored")
        assert len(t.sent()) == 2
    finally:
        t.close()


def test_start_and_help_come_from_the_registry(ctx):
    t = TG(ctx)
    try:
        before = t.model_calls()
        t.deliver(make_update("command", "/start", bot=BOT))
        [call] = t.wait_sent(1)
        assert text_of(call).startswith("Helion - Energy Union guide"), call
        assert t.model_calls() == before
    finally:
        t.close()


def test_info_shows_the_bot_and_its_webhook(ctx):
    t = TG(ctx)
    try:
        rc, out, err = run_dagi("telegram", "info", "helion", "-c", t.node.config_path, env=ENV)
        assert rc == 0, (out, err)
        assert '"username": "helion_bot"' in out and "/telegram/helion/webhook" in out, out
        assert TOKEN not in out + err
        rc, out, err = run_dagi("telegram", "info", "nobody", "-c", t.node.config_path, env=ENV)
        assert rc == 2 and "not in the registry" in err, err
    finally:
        t.close()


def test_typing_only_for_slow_answers(ctx):
    t = TG(ctx, extra="  typing_after: 300ms\n")
    try:
        # A quick answer shows no "typing...".
        t.deliver(make_update("text", "quick one", bot=BOT))
        t.wait_sent(1)
        assert t.tg.calls(method="sendChatAction") == []
        # A slow one does, before the answer.
        behave(t.addr, model="*", latency_ms=1200)
        t.deliver(make_update("text", "slow one", bot=BOT))
        t.wait_sent(2)
        actions = t.tg.calls(method="sendChatAction")
        assert actions and actions[0]["params"]["action"] == "typing", actions
        assert actions[0]["time"] < t.sent()[1]["time"]
    finally:
        t.close()
