"""Self-test of tests/fake/fake_telegram.py: the fake Telegram Bot API that the
Telegram tests run dagi against.  It has to follow the Bot API's shapes and
limits and fail only when asked to. If it doesn't, the tests built on it
prove nothing.

Each test starts the fake as a process on a free loopback port, talks to it
over real HTTP with urllib, and stops it by PID.  No dagi binary is needed."""
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness import margin, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE = os.path.join(os.path.dirname(HERE), "fake", "fake_telegram.py")
sys.path.insert(0, os.path.dirname(FAKE))
import fake_telegram  # noqa: E402  (make_update, utf16_len, FakeTelegram)

TOKEN = "123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
BOT = {"token": TOKEN, "id": 123456, "username": "helion_bot", "first_name": "Helion"}
TOKEN2 = "654321:BBFakeSecondBotTokenForTests_-0099"
BOT2 = {"token": TOKEN2, "id": 654321, "username": "second_bot", "first_name": "Second"}
SECRET_PART = TOKEN.split(":", 1)[1]


def free_port():
    """A free loopback port, the way the harness picks one (bind 0, close)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class FakeTg:
    """One fake_telegram.py process on a free loopback port."""

    def __init__(self, args=()):
        for _ in range(3):  # the port may be taken between the probe and the bind
            port = free_port()
            self.stderr = tempfile.TemporaryFile()
            self.proc = subprocess.Popen([sys.executable, FAKE, "--port", str(port), *args],
                                         stdout=subprocess.PIPE, stderr=self.stderr,
                                         stdin=subprocess.DEVNULL)
            line = self.proc.stdout.readline().decode()
            if line == f"listening on 127.0.0.1:{port}\n":
                self.url = f"http://127.0.0.1:{port}"
                return
            self.proc.wait()
            self.proc.stdout.close()
            log = self.log()
            self.stderr.close()
        raise AssertionError(f"fake_telegram did not start: {line!r} {log}")

    def log(self):
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop(check=exc[0] is None)

    def stop(self, check=True):
        """Stops the fake (SIGTERM to its PID) and returns its stderr; idempotent."""
        if getattr(self, "stopped_log", None) is not None:
            return self.stopped_log
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(margin(10))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("fake_telegram ignored SIGTERM")
        rest = self.proc.stdout.read().decode()
        self.proc.stdout.close()
        log = self.log()
        self.stderr.close()
        if check:
            assert self.proc.returncode == 0, f"fake_telegram exited {self.proc.returncode}: {log}"
            assert rest == "", f"more than one line on stdout: {rest!r}"
        self.stopped_log = log
        return log

    # --- HTTP ---
    def request(self, method, path, body=None, ctype=None, timeout=10):
        """(status, headers, raw body) - errors are answers too."""
        data = body
        headers = {}
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
            ctype = ctype or "application/json"
        if ctype:
            headers["Content-Type"] = ctype
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=margin(timeout)) as r:
                return r.status, dict(r.getheaders()), r.read()
        except urllib.error.HTTPError as e:
            with e:
                return e.code, dict(e.headers), e.read()

    def api(self, method, params=None, token=TOKEN, how="json", timeout=10):
        """A Bot API call: (status, decoded JSON answer)."""
        path = f"/bot{token}/{method}"
        params = params or {}
        if how == "json":
            st, _, body = self.request("POST", path, params, timeout=timeout)
        elif how == "form":
            form = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
            st, _, body = self.request("POST", path, urllib.parse.urlencode(form).encode(),
                                       "application/x-www-form-urlencoded", timeout=timeout)
        elif how == "query":
            q = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
            st, _, body = self.request("GET", path + "?" + urllib.parse.urlencode(q),
                                       timeout=timeout)
        elif how == "multipart":
            data, ctype = multipart(params)
            st, _, body = self.request("POST", path, data, ctype, timeout=timeout)
        else:
            raise ValueError(how)
        return st, json.loads(body)

    def ctl(self, method, what, body=None):
        st, _, raw = self.request(method, "/_fake/" + what, body)
        return st, json.loads(raw)

    def add_bot(self, bot=BOT):
        st, me = self.ctl("POST", "bots", bot)
        assert st == 200, me
        return me

    def calls(self, query=""):
        st, calls = self.ctl("GET", "calls" + (("?" + query) if query else ""))
        assert st == 200
        return calls


def multipart(params):
    boundary = "----faketgboundary7MA4YWxkTrZu0gW"
    out = b""
    for k, v in params.items():
        v = v if isinstance(v, str) else json.dumps(v)
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n"
                .encode() + v.encode() + b"\r\n")
    out += f"--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"


class Receiver:
    """A small webhook receiver standing in for dagi: it checks the secret
    header like a real bot would (401 without it) and answers `reply`."""

    def __init__(self, secret=None, reply=None):
        self.secret = secret
        self.reply = reply
        self.got = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                outer.got.append({"path": self.path, "headers": dict(self.headers),
                                  "update": json.loads(body)})
                got = self.headers.get("X-Telegram-Bot-Api-Secret-Token")
                if outer.secret is not None and got != outer.secret:
                    status, data = 401, b"bad secret"
                    ctype = "text/plain"
                elif outer.reply is not None:
                    status, data = 200, json.dumps(outer.reply).encode()
                    ctype = "application/json"
                else:
                    status, data, ctype = 200, b"", "text/plain"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/tg/webhook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def utf16(s):
    return fake_telegram.utf16_len(s)


def entity_text(text, ent):
    """The slice of text an entity covers, by UTF-16 offsets."""
    units = text.encode("utf-16-le")
    return units[2 * ent["offset"]:2 * (ent["offset"] + ent["length"])].decode("utf-16-le")


# --- tests -------------------------------------------------------------------------

def test_fake_telegram_auth_getme_and_routes(ctx):
    with FakeTg(args=("--verbose",)) as f:
        assert f.ctl("GET", "health") == (200, {"ok": True})
        unauthorized = {"ok": False, "error_code": 401, "description": "Unauthorized"}
        # Nothing is registered yet: every token is unknown, whatever the method.
        assert f.api("getMe") == (401, unauthorized)
        assert f.api("sendMessage", {"chat_id": 1, "text": "x"}, how="query") == (401, unauthorized)
        assert f.api("noSuchMethod") == (401, unauthorized)
        assert f.api("getMe", token="garbage") == (401, unauthorized)

        # Registration checks the token's shape and that id is its prefix.
        assert f.ctl("POST", "bots", {"token": "nocolon"})[0] == 400
        assert f.ctl("POST", "bots", dict(BOT, id=999))[0] == 400
        assert f.ctl("POST", "bots", dict(BOT, colour="red"))[0] == 400
        me = f.add_bot()
        expected = {"id": 123456, "is_bot": True, "first_name": "Helion",
                    "username": "helion_bot", "can_join_groups": True,
                    "can_read_all_group_messages": False, "supports_inline_queries": False,
                    "can_connect_to_business": False, "has_main_web_app": False}
        assert me == expected
        st, r = f.api("getMe")
        assert st == 200 and r == {"ok": True, "result": expected}
        # Method names are case-insensitive, GET works like POST.
        assert f.api("GETME") == (200, r) and f.api("getme", how="query") == (200, r)
        assert f.api("getMe", token=TOKEN[:-1] + "x") == (401, unauthorized)
        assert f.api("noSuchMethod") == (404, {"ok": False, "error_code": 404,
                                                "description": "Not Found"})
        st, _, raw = f.request("GET", "/nothing/here")
        assert st == 404 and json.loads(raw)["error_code"] == 404
        st, _, raw = f.request("GET", f"/bot{TOKEN}/getMe/extra")
        assert st == 404
        assert f.ctl("GET", "bogus")[0] == 404

        # Every call is recorded, with the bot's id and never the token.
        calls = f.calls()
        assert [c["method"] for c in calls] == [
            "getMe", "sendMessage", "noSuchMethod", "getMe", "getMe", "getMe", "getMe",
            "getMe", "noSuchMethod"]
        assert [c["bot_id"] for c in calls] == [None] * 4 + [123456] * 3 + [None, 123456]
        assert [c["status"] for c in calls] == [401] * 4 + [200] * 3 + [401, 404]
        assert [c["seq"] for c in calls] == sorted(c["seq"] for c in calls)
        st, bots = f.ctl("GET", "bots")
        for blob in (json.dumps(calls), json.dumps(bots)):
            assert SECRET_PART not in blob
        log = f.stop()
    # --verbose logs one line a request, with the token redacted.
    assert "bot123456:[redacted]/getMe" in log, log[:500]
    assert SECRET_PART not in log and TOKEN2.split(":")[1] not in log


def test_fake_telegram_send_message_validation(ctx):
    with FakeTg() as f:
        f.add_bot()
        too_long = {"ok": False, "error_code": 400,
                    "description": "Bad Request: message is too long"}
        empty = {"ok": False, "error_code": 400,
                 "description": "Bad Request: message text is empty"}

        # 2048 emoji are 4096 UTF-16 code units: the limit exactly.
        text = "😀" * 2048
        assert len(text) == 2048 and utf16(text) == 4096
        st, r = f.api("sendMessage", {"chat_id": 42, "text": text})
        assert st == 200, r
        m = r["result"]
        assert m["text"] == text and m["message_id"] == 1
        assert m["chat"] == {"id": 42, "type": "private"}
        assert m["from"] == {"id": 123456, "is_bot": True, "first_name": "Helion",
                             "username": "helion_bot"}
        assert isinstance(m["date"], int) and abs(m["date"] - time.time()) < 60
        # One more unit is too long, though it is only 2049 code points.
        assert f.api("sendMessage", {"chat_id": 42, "text": text + "a"}) == (400, too_long)
        mixed = "a😀" * 1365 + "b"
        assert utf16(mixed) == 4096
        assert f.api("sendMessage", {"chat_id": 42, "text": mixed}, how="form")[0] == 200
        assert f.api("sendMessage", {"chat_id": 42, "text": mixed + "é"}, how="form") == (
            400, too_long)
        # The length is counted after the markup is parsed out.
        html_text = "<b>" + "x" * 4096 + "</b>"
        st, r = f.api("sendMessage", {"chat_id": 42, "text": html_text, "parse_mode": "HTML"})
        assert st == 200 and r["result"]["text"] == "x" * 4096
        assert f.api("sendMessage", {"chat_id": 42, "text": "*" + "y" * 4097 + "*",
                                     "parse_mode": "MarkdownV2"}) == (400, too_long)
        assert f.api("sendMessage", {"chat_id": 42, "text": "hi",
                                     "parse_mode": "BBCode"})[0] == 400

        # Empty after strip, or missing.
        for t in ("", "  \n\t "):
            assert f.api("sendMessage", {"chat_id": 42, "text": t}) == (400, empty)
        assert f.api("sendMessage", {"chat_id": 42}) == (400, empty)
        assert f.api("sendMessage", {"chat_id": 42, "text": "<b> </b>",
                                     "parse_mode": "html"}) == (400, empty)
        assert f.api("sendMessage", {"text": "hi"}) == (
            400, {"ok": False, "error_code": 400, "description": "Bad Request: chat_id is empty"})
        assert f.api("sendMessage", {"chat_id": "not-a-chat", "text": "hi"})[1]["description"] \
            == "Bad Request: chat not found"

        # Every encoding is accepted; message ids count per chat.
        ids = []
        for how in ("json", "form", "query", "multipart"):
            st, r = f.api("sendMessage", {"chat_id": 43, "text": f"via {how}"}, how=how)
            assert st == 200, (how, r)
            assert r["result"]["text"] == f"via {how}" and r["result"]["chat"]["id"] == 43
            ids.append(r["result"]["message_id"])
        assert ids == [1, 2, 3, 4]
        assert [c["via"] for c in f.calls("method=sendMessage")[-4:]] == [
            "json", "form", "query", "multipart"]
        st, r = f.api("sendMessage", {"chat_id": -1001234567890, "text": "in a group"})
        assert r["result"]["chat"] == {"id": -1001234567890, "type": "supergroup"}
        assert r["result"]["message_id"] == 1

        # Replies: reply_parameters (JSON object, or JSON-serialized in a form) and
        # the older reply_to_message_id; the original comes back, not nested further.
        st, r = f.api("sendMessage", {"chat_id": 43, "text": "answer",
                                      "reply_parameters": {"message_id": 2}})
        assert st == 200, r
        orig = r["result"]["reply_to_message"]
        assert orig["message_id"] == 2 and orig["text"] == "via form"
        again = {"chat_id": 43, "text": "again",
                 "reply_parameters": {"message_id": r["result"]["message_id"]}}
        st, r2 = f.api("sendMessage", again, how="form")
        assert st == 200 and "reply_to_message" not in r2["result"]["reply_to_message"]
        st, r = f.api("sendMessage", {"chat_id": 43, "text": "old", "reply_to_message_id": "1"},
                      how="query")
        assert st == 200 and r["result"]["reply_to_message"]["message_id"] == 1
        assert f.api("sendMessage", {"chat_id": 43, "text": "x",
                                     "reply_parameters": {"message_id": 999}}) == (
            400, {"ok": False, "error_code": 400,
                  "description": "Bad Request: message to be replied not found"})
        st, r = f.api("sendMessage", {"chat_id": 43, "text": "x", "reply_parameters": {
            "message_id": 999, "allow_sending_without_reply": True}})
        assert st == 200 and "reply_to_message" not in r["result"]
        # Topics.
        st, r = f.api("sendMessage", {"chat_id": -1001234567890, "text": "topic",
                                      "message_thread_id": 7})
        assert st == 200 and r["result"]["message_thread_id"] == 7

        # sendChatAction: Telegram's list of actions only.
        assert f.api("sendChatAction", {"chat_id": 42, "action": "typing"}) == (
            200, {"ok": True, "result": True})
        assert f.api("sendChatAction", {"chat_id": 42, "action": "upload_photo"},
                     how="form")[0] == 200
        st, r = f.api("sendChatAction", {"chat_id": 42, "action": "dancing"})
        assert st == 400 and r["description"] == "Bad Request: wrong parameter action in request"
        assert f.api("sendChatAction", {"action": "typing"})[0] == 400


def test_fake_telegram_recorded_calls(ctx):
    with FakeTg() as f:
        f.add_bot()
        f.add_bot(BOT2)
        t0 = time.time()
        f.api("sendMessage", {"chat_id": 5, "text": "one"})
        f.api("sendMessage", {"chat_id": "5", "text": "two"}, token=TOKEN2, how="form")
        f.api("getMe")
        f.api("sendMessage", {"chat_id": 6, "text": "three", "reply_parameters": {
            "message_id": 1, "allow_sending_without_reply": True}})
        f.api("sendMessage", {"chat_id": 6, "text": ""})
        calls = f.calls()
        assert [c["method"] for c in calls] == ["sendMessage", "sendMessage", "getMe",
                                                "sendMessage", "sendMessage"]
        # Params as parsed: JSON keeps its types, a form gives strings.
        assert calls[0]["params"] == {"chat_id": 5, "text": "one"}
        assert calls[1]["params"] == {"chat_id": "5", "text": "two"}
        assert calls[3]["params"]["reply_parameters"] == {"message_id": 1,
                                                          "allow_sending_without_reply": True}
        assert all(t0 - 1 <= c["time"] <= time.time() + 1 for c in calls)
        assert [c["time"] for c in calls] == sorted(c["time"] for c in calls)
        assert all(c["failed"] is False for c in calls)
        assert [c["ok"] for c in calls] == [True, True, True, True, False]
        assert calls[0]["result"]["text"] == "one"
        assert calls[4]["error_code"] == 400

        sm = f.calls("method=sendMessage&bot_id=123456")
        assert [c["params"]["text"] for c in sm] == ["one", "three", ""]
        assert [c["params"]["text"] for c in f.calls("method=SENDMESSAGE&bot_id=654321")] == ["two"]
        assert [c["method"] for c in f.calls("bot_id=123456")] == [
            "sendMessage", "getMe", "sendMessage", "sendMessage"]
        assert f.calls("method=getUpdates") == []
        assert [c["params"]["text"] for c in f.calls(f"since={calls[2]['seq']}")] == ["three", ""]
        assert f.ctl("GET", "calls?bot_id=abc")[0] == 400

        assert f.ctl("DELETE", "calls") == (200, {"cleared": 5})
        assert f.calls() == []
        f.api("getMe")
        assert [c["method"] for c in f.calls()] == ["getMe"]


def test_fake_telegram_injected_failures(ctx):
    with FakeTg() as f:
        f.add_bot()
        f.add_bot(BOT2)
        st, spec = f.ctl("POST", "fail", {"method": "sendMessage", "times": 1, "error_code": 429,
                                          "description": "Too Many Requests: retry after 2",
                                          "retry_after": 2})
        assert st == 200, spec
        msg = {"chat_id": 7, "text": "hello"}
        assert f.api("sendMessage", msg) == (429, {
            "ok": False, "error_code": 429, "description": "Too Many Requests: retry after 2",
            "parameters": {"retry_after": 2}})
        st, r = f.api("sendMessage", msg)
        assert st == 200 and r["result"]["message_id"] == 1  # the failed call sent nothing
        assert [c["failed"] for c in f.calls("method=sendMessage")] == [True, False]
        assert [c["status"] for c in f.calls("method=sendMessage")] == [429, 200]

        # 500 twice (any method name spelling), then fine; other methods untouched.
        f.ctl("POST", "fail", {"method": "GETME", "times": 2, "error_code": 500})
        assert f.api("sendChatAction", {"chat_id": 7, "action": "typing"})[0] == 200
        assert f.api("getMe") == (500, {"ok": False, "error_code": 500,
                                        "description": "Internal Server Error"})
        assert f.api("getMe", how="query")[0] == 500
        assert f.api("getMe")[0] == 200

        # 400 with a description of the test's choosing, for one bot only.
        f.ctl("POST", "fail", {"method": "sendMessage", "bot_id": 654321, "error_code": 400,
                               "description": "Bad Request: chat not found"})
        assert f.api("sendMessage", msg)[0] == 200
        assert f.api("sendMessage", msg, token=TOKEN2) == (400, {
            "ok": False, "error_code": 400, "description": "Bad Request: chat not found"})
        assert f.api("sendMessage", msg, token=TOKEN2)[0] == 200

        # 429 without retry_after still says how long; a group migration.
        f.ctl("POST", "fail", {"method": "sendMessage", "error_code": 429})
        st, r = f.api("sendMessage", msg)
        assert st == 429 and r["parameters"] == {"retry_after": 1}
        assert r["description"] == "Too Many Requests: retry after 1"
        f.ctl("POST", "fail", {"method": "sendMessage", "error_code": 400,
                               "description": "Bad Request: group chat was upgraded to a "
                                              "supergroup chat",
                               "migrate_to_chat_id": -1009876543210})
        st, r = f.api("sendMessage", {"chat_id": -55, "text": "x"})
        assert st == 400 and r["parameters"] == {"migrate_to_chat_id": -1009876543210}

        # A delay alone answers normally, late.
        f.ctl("POST", "fail", {"method": "sendChatAction", "delay_ms": 300})
        t0 = time.monotonic()
        assert f.api("sendChatAction", {"chat_id": 7, "action": "typing"})[0] == 200
        assert time.monotonic() - t0 >= 0.3
        t0 = time.monotonic()
        f.api("sendChatAction", {"chat_id": 7, "action": "typing"})
        assert time.monotonic() - t0 < 0.3

        # "*", times -1 (until cleared), listing and clearing.
        f.ctl("POST", "fail", {"method": "*", "times": -1, "error_code": 502})
        assert f.api("getMe")[0] == 502 and f.api("getFile", {"file_id": "x"})[0] == 502
        st, listed = f.ctl("GET", "fail")
        assert st == 200 and listed == [{"method": "*", "times": -1, "error_code": 502,
                                         "delay_ms": 0, "description": "Bad Gateway"}]
        assert f.ctl("DELETE", "fail") == (200, {"ok": True})
        assert f.api("getMe")[0] == 200
        # Mistakes in the control body are refused, not ignored.
        assert f.ctl("POST", "fail", {"method": "getMe", "eror_code": 500})[0] == 400
        assert f.ctl("POST", "fail", {"method": "getMe", "error_code": 200})[0] == 400
        assert f.ctl("POST", "fail", {"method": "getMe", "times": 0, "error_code": 500})[0] == 400
        assert f.ctl("POST", "fail", {"method": "getMe"})[0] == 400


def test_fake_telegram_files(ctx):
    with FakeTg() as f:
        f.add_bot()
        f.add_bot(BOT2)
        content = bytes(range(256)) * 40 + b"\xff\xd8 end"
        st, r = f.ctl("POST", "files", {
            "token": TOKEN, "file_id": "AgACAgIAAxkBAAIBZmFrZV9waG90bw",
            "file_unique_id": "AQADz8cxG1qHEUt-", "file_path": "photos/file_1.jpg",
            "content_b64": base64.b64encode(content).decode()})
        assert st == 200, r
        file_obj = {"file_id": "AgACAgIAAxkBAAIBZmFrZV9waG90bw",
                    "file_unique_id": "AQADz8cxG1qHEUt-", "file_size": len(content),
                    "file_path": "photos/file_1.jpg"}
        assert r == file_obj
        assert f.api("getFile", {"file_id": "AgACAgIAAxkBAAIBZmFrZV9waG90bw"}) == (
            200, {"ok": True, "result": file_obj})
        assert f.api("getFile", {"file_id": "AgACAgIAAxkBAAIBZmFrZV9waG90bw"},
                     how="query")[0] == 200
        invalid = (400, {"ok": False, "error_code": 400,
                         "description": "Bad Request: invalid file_id"})
        assert f.api("getFile", {"file_id": "nope"}) == invalid
        assert f.api("getFile", {}) == invalid
        # file_ids belong to their bot.
        assert f.api("getFile", {"file_id": "AgACAgIAAxkBAAIBZmFrZV9waG90bw"},
                     token=TOKEN2) == invalid

        # The download, as https://api.telegram.org/file/bot<token>/<file_path>.
        st, headers, body = f.request("GET", f"/file/bot{TOKEN}/photos/file_1.jpg")
        assert st == 200 and body == content
        assert headers["Content-Type"] == "image/jpeg"
        assert int(headers["Content-Length"]) == len(content)
        assert f.request("GET", f"/file/bot{TOKEN2}/photos/file_1.jpg")[0] == 404
        assert f.request("GET", f"/file/bot{TOKEN}/photos/file_2.jpg")[0] == 404
        st, _, body = f.request("GET", f"/file/bot{TOKEN[:-2]}zz/photos/file_1.jpg")
        assert st == 401 and json.loads(body)["description"] == "Unauthorized"
        dl = f.calls("method=_download")
        assert [(c["bot_id"], c["params"]["file_path"], c["status"]) for c in dl] == [
            (123456, "photos/file_1.jpg", 200), (654321, "photos/file_1.jpg", 404),
            (123456, "photos/file_2.jpg", 404), (None, "photos/file_1.jpg", 401)]
        assert SECRET_PART not in json.dumps(f.calls())

        # Registration mistakes.
        assert f.ctl("POST", "files", {"token": "1:x", "file_id": "a", "file_path": "a"})[0] == 404
        assert f.ctl("POST", "files", {"bot_id": 123456, "file_id": "a",
                                       "file_path": "../etc/passwd"})[0] == 400
        assert f.ctl("POST", "files", {"bot_id": 123456, "file_id": "a", "file_path": "a",
                                       "content_b64": "%%%"})[0] == 400
        # by bot_id too; a claimed size over 20 MB is refused like Telegram does.
        assert f.ctl("POST", "files", {"bot_id": 123456, "file_id": "big",
                                       "file_path": "videos/file_2.mp4",
                                       "file_size": 21 * 1024 * 1024})[0] == 200
        assert f.api("getFile", {"file_id": "big"})[1]["description"] == \
            "Bad Request: file is too big"


def test_fake_telegram_webhook(ctx):
    with FakeTg() as f:
        f.add_bot()
        rcv = Receiver(secret="s3cr3t_-TOKEN")
        try:
            # Validation.
            def desc(params):
                st, r = f.api("setWebhook", params)
                assert st == 400, r
                return r["description"]
            assert desc({"url": "http://example.com/hook"}) == \
                "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
            assert desc({"url": "ftp://127.0.0.1/hook"}).startswith("Bad Request: bad webhook")
            assert desc({"url": "https://example.com:8080/hook"}) == \
                "Bad Request: bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443"
            for bad_secret in ("has space", "colon:no", "dot.no", "ünïcode", TOKEN):
                assert desc({"url": rcv.url, "secret_token": bad_secret}) == \
                    "Bad Request: secret token contains unallowed characters"
            assert desc({"url": rcv.url, "secret_token": "a" * 257}) == \
                "Bad Request: secret token is too long"
            assert f.api("setWebhook", {"url": "https://example.com:8443/h",
                                        "secret_token": "A-z_09" * 42 + "abcd"})[0] == 200
            st, r = f.api("getWebhookInfo")
            assert r["result"]["url"] == "https://example.com:8443/h"
            assert f.api("deleteWebhook") == (200, {"ok": True, "result": True,
                                                    "description": "Webhook was deleted"})
            assert f.api("deleteWebhook")[1]["description"] == "Webhook is already deleted"
            assert f.api("getWebhookInfo") == (200, {"ok": True, "result": {
                "url": "", "has_custom_certificate": False, "pending_update_count": 0}})

            # Set it for real (a form, as many clients send it).
            st, r = f.api("setWebhook", {"url": rcv.url, "secret_token": "s3cr3t_-TOKEN",
                                         "allowed_updates": ["message", "callback_query"],
                                         "drop_pending_updates": True}, how="form")
            assert (st, r) == (200, {"ok": True, "result": True,
                                     "description": "Webhook was set"}), r
            assert f.api("setWebhook", {"url": rcv.url, "secret_token": "s3cr3t_-TOKEN"}
                         )[1]["description"] == "Webhook is already set"
            st, r = f.api("getWebhookInfo")
            info = r["result"]
            assert info["url"] == rcv.url and info["has_custom_certificate"] is False
            assert info["pending_update_count"] == 0
            assert info["allowed_updates"] == ["message", "callback_query"]
            assert "secret_token" not in info
            st, hooks = f.ctl("GET", "webhooks")
            assert hooks["123456"]["secret_token"] == "s3cr3t_-TOKEN"

            # Delivery: the update as JSON, with the secret header.
            upd = fake_telegram.make_update("text", "hi there", bot=BOT)
            st, r = f.ctl("POST", "deliver", {"bot_id": 123456, "update": upd})
            assert st == 200 and r["status"] == 200 and r["body"] == "", r
            assert r["delivered"] is True and r["update_id"] == upd["update_id"]
            got = rcv.got[-1]
            assert got["path"] == "/tg/webhook" and got["update"] == upd
            assert got["headers"]["X-Telegram-Bot-Api-Secret-Token"] == "s3cr3t_-TOKEN"
            assert got["headers"]["Content-Type"] == "application/json"

            # Types outside allowed_updates are not delivered.
            edited = {"edited_message": dict(upd["message"], edit_date=int(time.time()))}
            st, r = f.ctl("POST", "deliver", {"bot_id": 123456, "update": edited})
            assert r["delivered"] is False and r["filtered"] is True and len(rcv.got) == 1

            # Answering the webhook with a method call: Telegram runs it.
            chat_id = upd["message"]["chat"]["id"]
            rcv.reply = {"method": "sendMessage", "chat_id": chat_id, "text": "pong",
                         "reply_parameters": {"message_id": upd["message"]["message_id"]}}
            upd2 = fake_telegram.make_update("text", "ping", bot=BOT)
            st, r = f.ctl("POST", "deliver", {"bot_id": 123456, "update": upd2})
            assert r["status"] == 200 and json.loads(r["body"]) == rcv.reply
            assert r["webhook_reply"]["status"] == 200
            sent = f.calls("method=sendMessage")
            assert len(sent) == 1 and sent[0]["via"] == "webhook_reply"
            assert sent[0]["result"]["chat"]["type"] == "private"   # the chat as delivered
            assert sent[0]["result"]["reply_to_message"]["text"] == "hi there"
            rcv.reply = None

            # Without a secret the receiver refuses: the status comes back, and
            # getWebhookInfo reports the error like Telegram does.
            assert f.api("setWebhook", {"url": rcv.url})[0] == 200
            st, r = f.ctl("POST", "deliver", {"bot_id": 123456,
                                              "update": fake_telegram.make_update("command")})
            assert r["status"] == 401 and r["body"] == "bad secret"
            assert "X-Telegram-Bot-Api-Secret-Token" not in rcv.got[-1]["headers"]
            info = f.api("getWebhookInfo")[1]["result"]
            assert info["last_error_message"] == "Wrong response from the webhook: 401 Unauthorized"
            assert abs(info["last_error_date"] - time.time()) < 60
            # allowed_updates kept from before, as "not specified" means.
            assert info["allowed_updates"] == ["message", "callback_query"]

            # getUpdates is refused while a webhook is set.
            st, r = f.api("getUpdates")
            assert st == 409 and r["description"].startswith(
                "Conflict: can't use getUpdates method while webhook is active")

            # No webhook: updates queue for getUpdates.
            f.api("deleteWebhook")
            q1 = fake_telegram.make_update("text", "queued 1")
            q2 = fake_telegram.make_update("photo", caption="queued 2")
            for u in (q1, q2):
                assert f.ctl("POST", "deliver", {"token": TOKEN, "update": u})[1]["queued"] is True
            assert f.api("getWebhookInfo")[1]["result"]["pending_update_count"] == 2
            st, r = f.api("getUpdates", {"timeout": 0})
            assert st == 200 and r["result"] == [q1, q2]
            st, r = f.api("getUpdates", {"offset": q1["update_id"] + 1}, how="query")
            assert r["result"] == [q2]
            assert f.api("getUpdates", {"offset": q2["update_id"] + 1})[1]["result"] == []
            # A delivery to a webhook nobody listens on is a failed delivery, not a crash.
            dead = f"http://127.0.0.1:{free_port()}/gone"
            f.api("setWebhook", {"url": dead})
            st, r = f.ctl("POST", "deliver", {"bot_id": 123456, "update": q1})
            assert st == 200 and r["delivered"] is False and r["status"] is None
            assert f.api("getWebhookInfo")[1]["result"]["last_error_message"].startswith(
                "Connection failed")
            assert f.ctl("POST", "deliver", {"bot_id": 999, "update": q1})[0] == 404
            assert f.ctl("POST", "deliver", {"bot_id": 123456, "update": {}})[0] == 400
        finally:
            rcv.close()


def test_fake_telegram_long_poll(ctx):
    with FakeTg() as f:
        f.add_bot()
        out = {}

        def poll(key, timeout):
            out[key] = f.api("getUpdates", {"timeout": timeout}, timeout=timeout + 10)

        t = threading.Thread(target=poll, args=("first", 20))
        t0 = time.monotonic()
        t.start()
        polling = lambda: f.ctl("GET", "webhooks")[1]["123456"]["polling"]  # noqa: E731
        wait_until(lambda: polling() == 1, 5, "the long poll to wait")
        time.sleep(0.2)
        upd = fake_telegram.make_update("mention", "hello", bot=BOT)
        assert f.ctl("POST", "deliver", {"bot_id": 123456, "update": upd})[1]["queued"]
        t.join(margin(10))
        assert not t.is_alive() and time.monotonic() - t0 < 10
        assert out["first"] == (200, {"ok": True, "result": [upd]})

        # A second poller ends the first with 409, as with two bot instances.
        f.api("getUpdates", {"offset": upd["update_id"] + 1})
        t = threading.Thread(target=poll, args=("old", 20))
        t.start()
        wait_until(lambda: polling() == 1, 5, "the second long poll to wait")
        assert f.api("getUpdates", {"timeout": 0}) == (200, {"ok": True, "result": []})
        t.join(margin(10))
        assert polling() == 0
        st, r = out["old"]
        assert st == 409 and r["description"].startswith("Conflict: terminated by other getUpdates")


def test_fake_telegram_make_update(ctx):
    mk = fake_telegram.make_update
    bot = {"id": 123456, "username": "helion_bot", "first_name": "Helion"}
    ups = [mk("text", "hi"), mk("mention", "👋🏽 hey @helion_bot, what's up?", bot=bot),
           mk("reply", "and then?", bot=bot), mk("photo", caption="look /start"),
           mk("command"), mk("from_bot", "beep")]
    ids = [u["update_id"] for u in ups]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for u in ups:
        assert set(u) == {"update_id", "message"}
        m = u["message"]
        assert {"message_id", "from", "chat", "date"} <= set(m)
        assert isinstance(m["date"], int) and m["from"]["is_bot"] in (True, False)

    text = ups[0]["message"]
    assert text["chat"]["type"] == "private" and text["chat"]["id"] == text["from"]["id"]
    assert text["text"] == "hi" and "entities" not in text and text["from"]["is_bot"] is False

    # The mention's offset counts UTF-16 units: 👋🏽 is two surrogate pairs.
    m = ups[1]["message"]
    assert m["chat"]["type"] == "supergroup" and m["chat"]["id"] < 0
    (ent,) = m["entities"]
    assert ent == {"offset": 9, "length": 11, "type": "mention"}
    assert entity_text(m["text"], ent) == "@helion_bot"
    assert mk("mention", "no handle here", bot=bot)["message"]["text"] == \
        "@helion_bot no handle here"

    r = ups[2]["message"]
    orig = r["reply_to_message"]
    assert orig["from"] == {"id": 123456, "is_bot": True, "first_name": "Helion",
                            "username": "helion_bot"}
    assert orig["chat"] == r["chat"] and orig["message_id"] < r["message_id"]
    assert "reply_to_message" not in orig

    p = ups[3]["message"]
    assert "text" not in p and p["caption"] == "look /start"
    widths = [s["width"] for s in p["photo"]]
    assert len(p["photo"]) == 4 and widths == sorted(widths)
    for s in p["photo"]:
        assert set(s) == {"file_id", "file_unique_id", "file_size", "width", "height"}
    assert len({s["file_id"] for s in p["photo"]}) == 4
    assert p["caption_entities"] == [{"offset": 5, "length": 6, "type": "bot_command"}]
    assert mk("photo", file_id="AgACbig")["message"]["photo"][-1]["file_id"] == "AgACbig"

    c = ups[4]["message"]
    assert c["text"] == "/start"
    assert c["entities"] == [{"offset": 0, "length": 6, "type": "bot_command"}]
    c2 = mk("command", "/ask@helion_bot what now", chat=fake_telegram.DEFAULT_GROUP)["message"]
    assert c2["entities"] == [{"offset": 0, "length": 15, "type": "bot_command"}]

    b = ups[5]["message"]
    assert b["from"]["is_bot"] is True and b["from"]["id"] != 123456
    assert b["chat"]["type"] == "supergroup" and "language_code" not in b["from"]

    # In-process use, as the harness will: replying to a message the bot sent,
    # then answering that reply, with ids the fake learned from the delivery.
    tg = fake_telegram.FakeTelegram().start()
    try:
        assert tg.url.startswith("http://127.0.0.1:")
        tg.add_bot(TOKEN, username="helion_bot", first_name="Helion")
        with urllib.request.urlopen(tg.url + "/_fake/health", timeout=margin(5)) as resp:
            assert json.loads(resp.read()) == {"ok": True}
        req = urllib.request.Request(
            f"{tg.url}/bot{TOKEN}/sendMessage", method="POST",
            data=json.dumps({"chat_id": -1001234567890, "text": "first"}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=margin(5)) as resp:
            sent = json.loads(resp.read())["result"]
        reply = mk("reply", "why?", bot=bot, reply_to=sent)
        assert reply["message"]["chat"] == sent["chat"]
        assert reply["message"]["reply_to_message"]["message_id"] == sent["message_id"]
        assert tg.deliver(123456, reply)["queued"] is True
        req = urllib.request.Request(
            f"{tg.url}/bot{TOKEN}/sendMessage", method="POST",
            data=json.dumps({"chat_id": -1001234567890, "text": "because",
                             "reply_parameters": {
                                 "message_id": reply["message"]["message_id"]}}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=margin(5)) as resp:
            answer = json.loads(resp.read())["result"]
        assert answer["reply_to_message"]["text"] == "why?"
        assert answer["message_id"] > reply["message"]["message_id"]
        assert [c["method"] for c in tg.calls()] == ["sendMessage", "sendMessage"]
    finally:
        tg.stop()
