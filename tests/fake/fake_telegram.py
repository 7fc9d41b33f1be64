#!/usr/bin/env python3
"""fake_telegram: a fake Telegram Bot API for dagi's tests.

Runs as a process:

    python3 tests/fake/fake_telegram.py --port N [--host 127.0.0.1] [--verbose]

It prints "listening on HOST:PORT" on stdout once the port is bound (port 0
picks a free one) and nothing else.  SIGTERM or SIGINT stops it (exit 0).

Or in-process:

    from fake_telegram import FakeTelegram, make_update
    tg = FakeTelegram().start()      # tg.url == "http://127.0.0.1:NNNN"
    tg.add_bot("123456:ABC-def", username="helion_bot", first_name="Helion")
    ...
    tg.stop()

It speaks the Bot API's HTTP shape (https://core.telegram.org/bots/api):
`/bot<token>/<method>` over GET or POST, parameters from the query string, a
JSON body, an application/x-www-form-urlencoded body or a multipart/form-data
body, method names case-insensitive, and every answer a JSON object
{"ok": true, "result": ...} or {"ok": false, "error_code": N, "description":
"...", "parameters": {...}} with the HTTP status equal to error_code.  Files
are served at `/file/bot<token>/<file_path>`.  The `/_fake/...` control API
registers bots and files, reads the recorded calls, injects failures and
delivers updates (see tests/fake/README.md).

Python's standard library only.  The token never appears in a recorded call
or a log line: calls carry the bot's id, logs show `bot<id>:[redacted]`.
"""
import argparse
import base64
import collections
import email.parser
import email.policy
import html
import http.client
import itertools
import json
import mimetypes
import re
import signal
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 50 * 1024 * 1024          # the Bot API's upload cap for multipart
MAX_TEXT = 4096                      # sendMessage text, in UTF-16 code units
MAX_DOWNLOAD = 20 * 1024 * 1024      # getFile refuses bigger files

TOKEN_RE = re.compile(r"^(\d{1,20}):[A-Za-z0-9_-]{1,128}$")
SECRET_RE = re.compile(r"^[A-Za-z0-9_-]+$")
REDACT_RE = re.compile(r"bot(\d+)(?::|%3[Aa])[^/\s?]*")

CHAT_ACTIONS = frozenset((
    "typing", "upload_photo", "record_video", "upload_video", "record_voice",
    "upload_voice", "upload_document", "choose_sticker", "find_location",
    "record_video_note", "upload_video_note"))

UPDATE_TYPES = (
    "message", "edited_message", "channel_post", "edited_channel_post",
    "business_connection", "business_message", "edited_business_message",
    "deleted_business_messages", "message_reaction", "message_reaction_count",
    "inline_query", "chosen_inline_result", "callback_query", "shipping_query",
    "pre_checkout_query", "purchased_paid_media", "poll", "poll_answer",
    "my_chat_member", "chat_member", "chat_join_request", "chat_boost",
    "removed_chat_boost")
# What an empty or absent allowed_updates means: everything but these.
NOT_BY_DEFAULT = frozenset(("chat_member", "message_reaction", "message_reaction_count"))
MESSAGE_UPDATES = ("message", "edited_message", "channel_post", "edited_channel_post",
                   "business_message", "edited_business_message")

DEFAULT_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request; "
         "make sure that only one bot instance is running",
    413: "Request Entity Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
}

LOOPBACK_HOSTS = ("127.0.0.1",)


def utf16_len(s):
    """Length of s in UTF-16 code units, as Telegram counts text and offsets."""
    return len(s.encode("utf-16-le", "surrogatepass")) // 2


def redact(text):
    return REDACT_RE.sub(lambda m: f"bot{m.group(1)}:[redacted]", text)


class ApiError(Exception):
    """An unsuccessful Bot API answer."""

    def __init__(self, code, description=None, parameters=None):
        super().__init__(description)
        self.code = code
        self.description = description or DEFAULT_DESCRIPTIONS.get(code, "Error")
        self.parameters = parameters or None

    def body(self):
        out = {"ok": False, "error_code": self.code, "description": self.description}
        if self.parameters:
            out["parameters"] = self.parameters
        return out


class ControlError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def bad(description):
    return ApiError(400, "Bad Request: " + description)


# --- parameter coercion ---------------------------------------------------
# Form and query parameters arrive as strings, JSON ones as JSON values;
# Telegram accepts both, and JSON-serialized strings for object parameters.

def _int(value, name):
    if isinstance(value, bool):
        raise bad(f"invalid {name} specified")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise bad(f"invalid {name} specified")


def _bool(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    return str(value).strip().lower() in ("true", "1", "yes", "on")


def _json_value(value, what):
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise bad(f"can't parse {what} JSON object")
    return value


def _str(value):
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value)


# --- text after entity parsing --------------------------------------------

def _strip_markdown(text, v2):
    specials = "*_~|`" if v2 else "*_`"
    escapable = None if v2 else set("_*`[")
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and (escapable is None or text[i + 1] in escapable):
            out.append(text[i + 1])
            i += 2
            continue
        if c in specials:
            i += 1
            continue
        if c == "[":
            i += 1
            continue
        if c == "]" and i + 1 < n and text[i + 1] == "(":
            j = text.find(")", i + 2)
            i = j + 1 if j >= 0 else n
            continue
        out.append(c)
        i += 1
    return "".join(out)


def parsed_text(text, parse_mode):
    """The message text as Telegram keeps it once the markup is parsed out.
    An approximation of Telegram's parser: good enough for length checks."""
    if parse_mode is None or parse_mode == "":
        return text
    mode = str(parse_mode).lower()
    if mode == "html":
        return html.unescape(re.sub(r"<[^>]*>", "", text))
    if mode == "markdownv2":
        return _strip_markdown(text, v2=True)
    if mode == "markdown":
        return _strip_markdown(text, v2=False)
    raise bad("unsupported parse_mode")


# --- request bodies -------------------------------------------------------

def parse_params(query, content_type, body):
    """(params dict, how they came).  Query parameters first, the body's win."""
    params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
    via = "query" if params else "none"
    ctype = (content_type or "").split(";", 1)[0].strip().lower()
    if body:
        if ctype == "application/json":
            try:
                doc = json.loads(body.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                raise bad("can't parse JSON object")
            if not isinstance(doc, dict):
                raise bad("can't parse JSON object")
            params.update(doc)
            via = "json"
        elif ctype == "application/x-www-form-urlencoded":
            try:
                form = urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True,
                                              strict_parsing=False)
            except UnicodeDecodeError:
                raise bad("strings must be encoded in UTF-8")
            params.update(dict(form))
            via = "form"
        elif ctype == "multipart/form-data":
            params.update(parse_multipart(content_type, body))
            via = "multipart"
        elif ctype == "":
            # curl -d without a type; Telegram reads it as a form.
            params.update(dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace"),
                                                      keep_blank_values=True)))
            via = "form"
        else:
            raise bad(f"unsupported Content-Type {ctype}")
    return params, via


def parse_multipart(content_type, body):
    head = b"Content-Type: " + content_type.encode("latin-1") + b"\r\nMIME-Version: 1.0\r\n\r\n"
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not msg.is_multipart():
        raise bad("can't parse multipart/form-data body")
    out = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        data = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            out[name] = {"filename": filename, "content_type": part.get_content_type(),
                         "size": len(data)}
        else:
            try:
                out[name] = data.decode("utf-8")
            except UnicodeDecodeError:
                raise bad("strings must be encoded in UTF-8")
    return out


# --- the state -------------------------------------------------------------

class State:
    """Everything the fake knows.  One lock; long polls wait on its condition."""

    def __init__(self, verbose=False):
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.verbose = verbose
        self.stopping = False
        self.reset()

    def reset(self):
        with self.lock:
            self.bots = {}            # id -> bot dict (with "token")
            self.by_token = {}        # token -> id
            self.files = {}           # (bot id, file_id) -> file dict
            self.calls = []
            self.seq = itertools.count(1)
            self.failures = []
            self.chats = {}           # chat id -> Chat object seen or registered
            self.messages = {}        # (bot id, chat id, message_id) -> Message
            self.next_mid = {}        # (bot id, chat id) -> next message_id
            self.cond.notify_all()

    def log(self, line):
        if self.verbose:
            sys.stderr.write(redact(line) + "\n")
            sys.stderr.flush()

    # --- control API ---
    def add_bot(self, spec):
        allowed = {"token", "id", "username", "first_name", "last_name", "can_join_groups",
                   "can_read_all_group_messages", "supports_inline_queries"}
        _no_unknown(spec, allowed)
        token = spec.get("token")
        m = TOKEN_RE.match(token) if isinstance(token, str) else None
        if not m:
            raise ControlError(400, "token must look like <digits>:<A-Za-z0-9_->")
        bot_id = int(m.group(1))
        if "id" in spec and spec["id"] != bot_id:
            raise ControlError(400, "id must be the token's numeric prefix, as with Telegram")
        username = spec.get("username", f"bot{bot_id}_bot")
        if not isinstance(username, str) or not re.match(r"^[A-Za-z0-9_]{5,32}$", username) \
                or not username.lower().endswith("bot"):
            raise ControlError(400, "username must be 5-32 of A-Za-z0-9_ and end in 'bot'")
        bot = {
            "id": bot_id, "token": token, "username": username,
            "first_name": spec.get("first_name", username),
            "last_name": spec.get("last_name"),
            "can_join_groups": bool(spec.get("can_join_groups", True)),
            "can_read_all_group_messages": bool(spec.get("can_read_all_group_messages", False)),
            "supports_inline_queries": bool(spec.get("supports_inline_queries", False)),
            "webhook": _no_webhook(),
            "updates": collections.deque(),
            "next_update_id": 1,
            "poll_gen": 0,
            "polling": 0,             # getUpdates calls waiting right now
        }
        with self.lock:
            old = self.bots.get(bot_id)
            if old:
                self.by_token.pop(old["token"], None)
                bot["webhook"], bot["updates"] = old["webhook"], old["updates"]
                bot["next_update_id"] = old["next_update_id"]
            self.bots[bot_id] = bot
            self.by_token[token] = bot_id
        return Api(self).get_me(bot, {})[0]

    def resolve_bot(self, spec):
        """A bot from a control body's "bot_id" or "token"."""
        with self.lock:
            if spec.get("token") is not None:
                bot_id = self.by_token.get(spec["token"])
            else:
                bot_id = spec.get("bot_id")
            bot = self.bots.get(bot_id) if isinstance(bot_id, int) else None
        if bot is None:
            raise ControlError(404, "no such bot (register it with POST /_fake/bots)")
        return bot

    def add_file(self, spec):
        _no_unknown(spec, {"token", "bot_id", "file_id", "file_unique_id", "file_path",
                           "content_b64", "file_size"})
        bot = self.resolve_bot(spec)
        file_id = spec.get("file_id")
        path = spec.get("file_path")
        if not isinstance(file_id, str) or not file_id:
            raise ControlError(400, "file_id is required")
        if not isinstance(path, str) or not path or path.startswith("/") or ".." in path.split("/"):
            raise ControlError(400, "file_path must be a relative path like photos/file_1.jpg")
        try:
            content = base64.b64decode(spec.get("content_b64", ""), validate=True)
        except (ValueError, TypeError):
            raise ControlError(400, "content_b64 is not base64")
        entry = {"file_id": file_id,
                 "file_unique_id": spec.get("file_unique_id") or "AQAD" + file_id[-8:],
                 "file_path": path, "content": content,
                 "file_size": spec.get("file_size", len(content))}
        with self.lock:
            self.files[(bot["id"], file_id)] = entry
        return _public_file(entry)

    def add_chat(self, chat):
        if not isinstance(chat, dict) or not isinstance(chat.get("id"), int) or \
                chat.get("type") not in ("private", "group", "supergroup", "channel"):
            raise ControlError(400, "a chat needs an integer id and a type "
                                    "(private, group, supergroup, channel)")
        with self.lock:
            self.chats[chat["id"]] = dict(chat)
        return chat

    def add_failure(self, spec):
        _no_unknown(spec, {"method", "bot_id", "times", "error_code", "description",
                           "retry_after", "migrate_to_chat_id", "delay_ms"})
        method = spec.get("method", "*")
        if not isinstance(method, str) or not method:
            raise ControlError(400, "method must be a method name or \"*\"")
        times = spec.get("times", 1)
        if not isinstance(times, int) or isinstance(times, bool) or times == 0 or times < -1:
            raise ControlError(400, "times must be a positive count, or -1 for always")
        code = spec.get("error_code")
        if code is not None and (not isinstance(code, int) or not 400 <= code <= 599):
            raise ControlError(400, "error_code must be 400-599")
        delay = spec.get("delay_ms", 0)
        if not isinstance(delay, (int, float)) or delay < 0 or delay > 600000:
            raise ControlError(400, "delay_ms must be 0-600000")
        if code is None and not delay:
            raise ControlError(400, "give error_code, delay_ms or both")
        for key in ("retry_after", "migrate_to_chat_id"):
            if key in spec and not isinstance(spec[key], int):
                raise ControlError(400, f"{key} must be an integer")
        entry = {"method": method.lower(), "bot_id": spec.get("bot_id"), "times": times,
                 "error_code": code, "delay_ms": delay,
                 "retry_after": spec.get("retry_after"),
                 "migrate_to_chat_id": spec.get("migrate_to_chat_id"),
                 "description": spec.get("description")}
        if code == 429 and entry["retry_after"] is None:
            entry["retry_after"] = 1      # Telegram always says how long to wait
        if code is not None and entry["description"] is None:
            entry["description"] = (f"Too Many Requests: retry after {entry['retry_after']}"
                                    if code == 429 else DEFAULT_DESCRIPTIONS.get(code, "Error"))
        with self.lock:
            self.failures.append(entry)
        return _public_failure(entry)

    def take_failure(self, method, bot_id):
        with self.lock:
            for f in self.failures:
                if f["method"] not in ("*", method.lower()):
                    continue
                if f["bot_id"] is not None and f["bot_id"] != bot_id:
                    continue
                if f["times"] > 0:
                    f["times"] -= 1
                    if f["times"] == 0:
                        self.failures.remove(f)
                return dict(f)
        return None

    def list_calls(self, method=None, bot_id=None, since=None):
        with self.lock:
            out = list(self.calls)
        if method:
            out = [c for c in out if c["method"].lower() == method.lower()]
        if bot_id is not None:
            out = [c for c in out if c["bot_id"] == bot_id]
        if since is not None:
            out = [c for c in out if c["seq"] > since]
        return out

    def record(self, entry):
        with self.lock:
            entry["seq"] = next(self.seq)
            self.calls.append(entry)

    # --- messages and chats ---
    def chat_for(self, chat_id):
        """The Chat object for chat_id, or raise "chat not found"."""
        with self.lock:
            if isinstance(chat_id, str) and chat_id.startswith("@"):
                for c in self.chats.values():
                    if c.get("username", "").lower() == chat_id[1:].lower():
                        return dict(c)
                raise bad("chat not found")
            try:
                cid = _int(chat_id, "chat_id")
            except ApiError:
                raise bad("chat not found")
            if cid == 0:
                raise bad("chat not found")
            if cid in self.chats:
                return dict(self.chats[cid])
        if cid > 0:
            return {"id": cid, "type": "private"}
        if cid <= -1000000000000:
            return {"id": cid, "type": "supergroup"}
        return {"id": cid, "type": "group"}

    def new_message(self, bot, chat, fields):
        with self.lock:
            key = (bot["id"], chat["id"])
            mid = self.next_mid.get(key, 1)
            self.next_mid[key] = mid + 1
            msg = {"message_id": mid, "from": bot_user(bot), "chat": chat,
                   "date": int(time.time())}
            if chat["type"] == "channel":      # channel posts come from the channel
                del msg["from"]
                msg["sender_chat"] = chat
            msg.update(fields)
            self.messages[(bot["id"], chat["id"], mid)] = msg
            return msg

    def remember_update(self, bot, update):
        """Chats and messages seen in a delivered update, so that replies to
        them resolve and new message ids follow theirs."""
        with self.lock:
            uid = update.get("update_id")
            if isinstance(uid, int) and uid >= bot["next_update_id"]:
                bot["next_update_id"] = uid + 1
            for kind in MESSAGE_UPDATES:
                msg = update.get(kind)
                if isinstance(msg, dict):
                    self._remember_message(bot, msg)
                    if isinstance(msg.get("reply_to_message"), dict):
                        self._remember_message(bot, msg["reply_to_message"])

    def _remember_message(self, bot, msg):
        chat = msg.get("chat")
        mid = msg.get("message_id")
        if not isinstance(chat, dict) or not isinstance(chat.get("id"), int) or \
                not isinstance(mid, int):
            return
        self.chats.setdefault(chat["id"], dict(chat))
        self.messages[(bot["id"], chat["id"], mid)] = msg
        key = (bot["id"], chat["id"])
        self.next_mid[key] = max(self.next_mid.get(key, 1), mid + 1)

    # --- updates for getUpdates ---
    def queue_update(self, bot, update):
        with self.cond:
            bot["updates"].append(update)
            self.cond.notify_all()
            return len(bot["updates"])

    def stop(self):
        with self.cond:
            self.stopping = True
            self.cond.notify_all()


def _no_unknown(spec, allowed):
    if not isinstance(spec, dict):
        raise ControlError(400, "the body must be a JSON object")
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ControlError(400, f"unknown keys: {', '.join(unknown)}")


def _no_webhook():
    return {"url": "", "secret_token": None, "allowed_updates": None, "max_connections": 40,
            "ip_address": None, "last_error_date": None, "last_error_message": None}


def _public_file(entry):
    return {k: entry[k] for k in ("file_id", "file_unique_id", "file_size", "file_path")}


def _public_failure(f):
    return {k: v for k, v in f.items() if v is not None}


def bot_user(bot):
    """The bot as a User in a Message's `from`."""
    u = {"id": bot["id"], "is_bot": True, "first_name": bot["first_name"]}
    if bot.get("last_name"):
        u["last_name"] = bot["last_name"]
    u["username"] = bot["username"]
    return u


def update_type(update):
    for k in update:
        if k != "update_id":
            return k
    return None


def wants(allowed, kind):
    if not allowed:
        return kind not in NOT_BY_DEFAULT
    return kind in allowed


# --- Bot API methods ---------------------------------------------------------

class Api:
    def __init__(self, state):
        self.s = state

    # getMe
    def get_me(self, bot, p):
        u = {"id": bot["id"], "is_bot": True, "first_name": bot["first_name"]}
        if bot.get("last_name"):
            u["last_name"] = bot["last_name"]
        u.update({"username": bot["username"],
                  "can_join_groups": bot["can_join_groups"],
                  "can_read_all_group_messages": bot["can_read_all_group_messages"],
                  "supports_inline_queries": bot["supports_inline_queries"],
                  "can_connect_to_business": False, "has_main_web_app": False})
        return u, None

    def _chat(self, p):
        if p.get("chat_id") in (None, ""):
            raise bad("chat_id is empty")
        return self.s.chat_for(p["chat_id"])

    def _text(self, p, key="text"):
        raw = _str(p.get(key))
        text = parsed_text(raw or "", p.get("parse_mode")).strip()
        if not text:
            raise bad("message text is empty")
        if utf16_len(text) > MAX_TEXT:
            raise bad("message is too long")
        return text

    def _reply(self, bot, chat, p):
        rp = p.get("reply_parameters")
        if rp not in (None, ""):
            rp = _json_value(rp, "reply parameters")
            if not isinstance(rp, dict) or "message_id" not in rp:
                raise bad("can't parse reply parameters JSON object")
        elif p.get("reply_to_message_id") not in (None, ""):
            rp = {"message_id": p["reply_to_message_id"],
                  "allow_sending_without_reply": p.get("allow_sending_without_reply", False)}
        else:
            return None
        mid = _int(rp["message_id"], "message_id")
        target = chat
        if rp.get("chat_id") not in (None, ""):
            target = self.s.chat_for(rp["chat_id"])
        with self.s.lock:
            orig = self.s.messages.get((bot["id"], target["id"], mid))
        if orig is None:
            if _bool(rp.get("allow_sending_without_reply", False)):
                return None
            raise bad("message to be replied not found")
        if target["id"] != chat["id"]:
            return None                # a reply in another chat: no reply_to_message
        orig = dict(orig)
        orig.pop("reply_to_message", None)   # never nested further, as documented
        return orig

    def send_message(self, bot, p):
        chat = self._chat(p)
        text = self._text(p)
        fields = {}
        thread = p.get("message_thread_id")
        if thread not in (None, ""):
            thread = _int(thread, "message_thread_id")
            fields["message_thread_id"] = thread
            if chat["type"] == "supergroup" and chat.get("is_forum"):
                fields["is_topic_message"] = True
        reply = self._reply(bot, chat, p)
        if reply is not None:
            fields["reply_to_message"] = reply
        fields["text"] = text
        ents = p.get("entities")
        if ents not in (None, ""):
            ents = _json_value(ents, "message entities")
            if isinstance(ents, list) and ents:
                fields["entities"] = ents
        return self.s.new_message(bot, chat, fields), None

    def send_chat_action(self, bot, p):
        self._chat(p)
        action = _str(p.get("action"))
        if action not in CHAT_ACTIONS:
            raise bad("wrong parameter action in request")
        if p.get("message_thread_id") not in (None, ""):
            _int(p["message_thread_id"], "message_thread_id")
        return True, None

    def edit_message_text(self, bot, p):
        chat = self._chat(p)
        if p.get("message_id") in (None, ""):
            raise bad("message identifier is not specified")
        mid = _int(p["message_id"], "message_id")
        text = self._text(p)
        with self.s.lock:
            msg = self.s.messages.get((bot["id"], chat["id"], mid))
            if msg is None:
                raise bad("message to edit not found")
            if msg.get("from", {}).get("id") != bot["id"]:
                raise bad("message can't be edited")
            if msg.get("text") == text:
                raise bad("message is not modified: specified new message content and reply "
                          "markup are exactly the same as a current content and reply markup "
                          "of the message")
            msg = dict(msg)
            msg["text"] = text
            msg["edit_date"] = int(time.time())
            self.s.messages[(bot["id"], chat["id"], mid)] = msg
        return msg, None

    def delete_message(self, bot, p):
        chat = self._chat(p)
        if p.get("message_id") in (None, ""):
            raise bad("message identifier is not specified")
        mid = _int(p["message_id"], "message_id")
        with self.s.lock:
            if self.s.messages.pop((bot["id"], chat["id"], mid), None) is None:
                raise bad("message to delete not found")
        return True, None

    def get_file(self, bot, p):
        file_id = _str(p.get("file_id"))
        with self.s.lock:
            entry = self.s.files.get((bot["id"], file_id))
        if entry is None:
            raise bad("invalid file_id")
        if entry["file_size"] > MAX_DOWNLOAD:
            raise bad("file is too big")
        return _public_file(entry), None

    def set_webhook(self, bot, p):
        url = _str(p.get("url")) or ""
        if url == "":
            return self.delete_webhook(bot, p)
        u = urllib.parse.urlsplit(url)
        try:
            port = u.port
        except ValueError:
            raise bad("bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443")
        if not u.hostname:
            raise bad("bad webhook: Failed to resolve host: Name or service not known")
        if u.scheme == "https":
            if u.hostname not in LOOPBACK_HOSTS and port not in (None, 80, 88, 443, 8443):
                raise bad("bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443")
        elif not (u.scheme == "http" and u.hostname in LOOPBACK_HOSTS):
            raise bad("bad webhook: An HTTPS URL must be provided for webhook")
        secret = p.get("secret_token")
        secret = _str(secret) if secret not in (None, "") else None
        if secret is not None:
            if len(secret) > 256:
                raise bad("secret token is too long")
            if not SECRET_RE.match(secret):
                raise bad("secret token contains unallowed characters")
        allowed = p.get("allowed_updates")
        if allowed is not None:
            allowed = _json_value(allowed, "allowed updates")
            if not isinstance(allowed, list) or not all(isinstance(x, str) for x in allowed):
                raise bad("can't parse allowed updates")
        mc = p.get("max_connections")
        if mc not in (None, ""):
            mc = _int(mc, "max_connections")
            if not 1 <= mc <= 100:
                raise bad("bad webhook: max_connections must be between 1 and 100")
        else:
            mc = None
        with self.s.lock:
            wh = bot["webhook"]
            same = (wh["url"] == url and wh["secret_token"] == secret and
                    (allowed is None or allowed == wh["allowed_updates"]))
            wh["url"] = url
            wh["secret_token"] = secret
            if allowed is not None:
                wh["allowed_updates"] = allowed
            if mc is not None:
                wh["max_connections"] = mc
            wh["ip_address"] = p.get("ip_address") or "127.0.0.1"
            if _bool(p.get("drop_pending_updates", False)):
                bot["updates"].clear()
            self.s.cond.notify_all()      # a waiting getUpdates ends
        return True, "Webhook is already set" if same else "Webhook was set"

    def delete_webhook(self, bot, p):
        with self.s.lock:
            wh = bot["webhook"]
            had = bool(wh["url"])
            keep_allowed = wh["allowed_updates"]
            bot["webhook"] = _no_webhook()
            bot["webhook"]["allowed_updates"] = keep_allowed
            if _bool(p.get("drop_pending_updates", False)):
                bot["updates"].clear()
        return True, "Webhook was deleted" if had else "Webhook is already deleted"

    def get_webhook_info(self, bot, p):
        with self.s.lock:
            wh = bot["webhook"]
            info = {"url": wh["url"], "has_custom_certificate": False,
                    "pending_update_count": len(bot["updates"])}
            if wh["url"]:
                info["ip_address"] = wh["ip_address"]
                for key in ("last_error_date", "last_error_message"):
                    if wh[key] is not None:
                        info[key] = wh[key]
                info["max_connections"] = wh["max_connections"]
                if wh["allowed_updates"] is not None:
                    info["allowed_updates"] = wh["allowed_updates"]
        return info, None

    def get_updates(self, bot, p):
        offset = _int(p["offset"], "offset") if p.get("offset") not in (None, "") else 0
        limit = _int(p["limit"], "limit") if p.get("limit") not in (None, "") else 100
        limit = max(1, min(100, limit))
        timeout = _int(p["timeout"], "timeout") if p.get("timeout") not in (None, "") else 0
        timeout = max(0, timeout)
        allowed = p.get("allowed_updates")
        if allowed not in (None, ""):
            allowed = _json_value(allowed, "allowed updates")
            if not isinstance(allowed, list):
                raise bad("can't parse allowed updates")
        else:
            allowed = None
        s = self.s
        with s.cond:
            if bot["webhook"]["url"]:
                raise ApiError(409, "Conflict: can't use getUpdates method while webhook is "
                                    "active; use deleteWebhook to delete the webhook first")
            if allowed is not None:
                bot["webhook"]["allowed_updates"] = allowed
            bot["poll_gen"] += 1
            gen = bot["poll_gen"]
            s.cond.notify_all()           # an older long poll ends with 409
            q = bot["updates"]
            if offset > 0:
                while q and q[0]["update_id"] < offset:
                    q.popleft()
            elif offset < 0:
                while len(q) > -offset:
                    q.popleft()
            deadline = time.monotonic() + timeout
            bot["polling"] += 1
            try:
                while True:
                    if bot["poll_gen"] != gen:
                        raise ApiError(409)
                    if q or s.stopping or bot["webhook"]["url"]:
                        return list(itertools.islice(q, 0, limit)), None
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return [], None
                    s.cond.wait(min(left, 1.0))
            finally:
                bot["polling"] -= 1


METHODS = {
    "getme": ("getMe", Api.get_me),
    "sendmessage": ("sendMessage", Api.send_message),
    "sendchataction": ("sendChatAction", Api.send_chat_action),
    "editmessagetext": ("editMessageText", Api.edit_message_text),
    "deletemessage": ("deleteMessage", Api.delete_message),
    "getfile": ("getFile", Api.get_file),
    "setwebhook": ("setWebhook", Api.set_webhook),
    "deletewebhook": ("deleteWebhook", Api.delete_webhook),
    "getwebhookinfo": ("getWebhookInfo", Api.get_webhook_info),
    "getupdates": ("getUpdates", Api.get_updates),
}


def _recordable(params):
    """Params as parsed, safe to keep as JSON (no bytes)."""
    out = {}
    for k, v in params.items():
        out[k] = v if isinstance(v, (str, int, float, bool, list, dict, type(None))) else repr(v)
    return out


def call_api(state, token, method_name, params, via):
    """One Bot API call: (HTTP status, response body dict).  Recorded."""
    api = Api(state)
    with state.lock:
        bot_id = state.by_token.get(token)
        bot = state.bots.get(bot_id)
    known = METHODS.get(method_name.lower())
    entry = {"time": time.time(), "method": known[0] if known else method_name,
             "bot_id": bot["id"] if bot else None, "params": _recordable(params),
             "via": via, "failed": False}
    try:
        if bot is None:
            raise ApiError(401)
        if known is None:
            raise ApiError(404)
        fail = state.take_failure(known[0], bot["id"])
        if fail and fail["delay_ms"]:
            time.sleep(fail["delay_ms"] / 1000.0)
        if fail and fail["error_code"] is not None:
            entry["failed"] = True
            params_out = {}
            if fail.get("retry_after") is not None:
                params_out["retry_after"] = fail["retry_after"]
            if fail.get("migrate_to_chat_id") is not None:
                params_out["migrate_to_chat_id"] = fail["migrate_to_chat_id"]
            raise ApiError(fail["error_code"], fail["description"], params_out)
        result, description = known[1](api, bot, params)
        body = {"ok": True, "result": result}
        if description:
            body["description"] = description
        status = 200
        entry["result"] = result
    except ApiError as e:
        status, body = e.code, e.body()
        entry["error_code"] = e.code
        entry["description"] = e.description
    entry["status"] = status
    entry["ok"] = status == 200
    state.record(entry)
    return status, body


# --- webhook delivery ---------------------------------------------------------

def deliver(state, spec):
    """POSTs an update to the bot's webhook (or queues it for getUpdates)."""
    _no_unknown(spec, {"bot_id", "token", "update", "timeout"})
    bot = state.resolve_bot(spec)
    update = spec.get("update")
    if not isinstance(update, dict) or update_type(update) is None:
        raise ControlError(400, "update must be an Update object")
    update = dict(update)
    with state.lock:
        if not isinstance(update.get("update_id"), int):
            update["update_id"] = bot["next_update_id"]
        state.remember_update(bot, update)
        wh = dict(bot["webhook"])
    kind = update_type(update)
    out = {"update_id": update["update_id"]}
    if not wants(wh["allowed_updates"], kind):
        out.update(delivered=False, filtered=True)
        return out
    if not wh["url"]:
        out.update(delivered=False, queued=True,
                   pending_update_count=state.queue_update(bot, update))
        return out
    u = urllib.parse.urlsplit(wh["url"])
    if u.hostname not in LOOPBACK_HOSTS:
        raise ControlError(400, "the webhook is not on 127.0.0.1; the fake delivers "
                                "nowhere else")
    timeout = spec.get("timeout", 10)
    headers = {"Content-Type": "application/json"}
    if wh["secret_token"]:
        headers["X-Telegram-Bot-Api-Secret-Token"] = wh["secret_token"]
    body = json.dumps(update, ensure_ascii=False).encode("utf-8")
    if u.scheme == "https":
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(u.hostname, u.port or 443, timeout=timeout,
                                           context=ctx)
    else:
        conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    path = u.path or "/"
    if u.query:
        path += "?" + u.query
    try:
        conn.request("POST", path, body=body, headers=headers)
        r = conn.getresponse()
        status, rbody = r.status, r.read()
        rtype = r.getheader("Content-Type", "")
    except (OSError, http.client.HTTPException) as e:
        with state.lock:
            bot["webhook"]["last_error_date"] = int(time.time())
            bot["webhook"]["last_error_message"] = f"Connection failed: {e}"
        out.update(delivered=False, status=None, body="", error=str(e))
        return out
    finally:
        conn.close()
    text = rbody.decode("utf-8", "replace")
    out.update(delivered=True, status=status, body=text)
    if not 200 <= status < 300:
        with state.lock:
            bot["webhook"]["last_error_date"] = int(time.time())
            bot["webhook"]["last_error_message"] = (
                f"Wrong response from the webhook: {status} {http.client.responses.get(status, '')}"
                .rstrip())
        return out
    # A webhook may answer with one method call in its body; Telegram runs it.
    if rtype.split(";")[0].strip().lower() == "application/json" and rbody:
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("method"), str):
            params = {k: v for k, v in doc.items() if k != "method"}
            st, resp = call_api(state, bot["token"], doc["method"], params, "webhook_reply")
            out["webhook_reply"] = {"status": st, "response": resp}
    return out


# --- HTTP -------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-telegram/1"
    sys_version = ""

    def log_message(self, fmt, *args):
        self.server.state.log(f"{self.address_string()} " + (fmt % args))

    def log_request(self, code="-", size="-"):
        self.server.state.log(f"{self.command} {self.path} -> {code}")

    def _send(self, status, body, ctype="application/json"):
        if isinstance(body, (dict, list)):
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        elif isinstance(body, str):
            data = body.encode("utf-8")
        else:
            data = body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                line = self.rfile.readline(1024)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline(3)
                if len(data) > MAX_BODY:
                    raise ApiError(413)
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise ApiError(413)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        self._route()

    def do_POST(self):
        self._route()

    def do_DELETE(self):
        self._route()

    def do_PUT(self):
        self._route()

    def do_HEAD(self):
        self._route()

    def _route(self):
        state = self.server.state
        split = urllib.parse.urlsplit(self.path)
        path = split.path
        try:
            body = self._body()
        except ApiError as e:
            self.close_connection = True
            return self._send(e.code, e.body())
        except ValueError:
            self.close_connection = True
            return self._send(400, {"ok": False, "error_code": 400,
                                    "description": "Bad Request: bad chunked body"})
        if path.startswith("/_fake/"):
            return self._control(path[len("/_fake/"):], split.query, body)
        parts = path.split("/")
        # /bot<token>/<method>
        if len(parts) == 3 and parts[1].startswith("bot") and self.command in ("GET", "POST"):
            token = urllib.parse.unquote(parts[1][3:])
            method = parts[2]
            try:
                params, via = parse_params(split.query, self.headers.get("Content-Type"), body)
            except ApiError as e:
                with state.lock:
                    known = token in state.by_token
                return self._send(401 if not known else e.code,
                                  ApiError(401).body() if not known else e.body())
            status, resp = call_api(state, token, method, params, via)
            return self._send(status, resp)
        # /file/bot<token>/<file_path>
        if len(parts) >= 4 and parts[1] == "file" and parts[2].startswith("bot") and \
                self.command in ("GET", "HEAD"):
            token = urllib.parse.unquote(parts[2][3:])
            file_path = urllib.parse.unquote("/".join(parts[3:]))
            return self._download(token, file_path)
        return self._send(404, ApiError(404).body())

    def _download(self, token, file_path):
        state = self.server.state
        with state.lock:
            bot_id = state.by_token.get(token)
            entry = None
            if bot_id is not None:
                for (bid, _), f in state.files.items():
                    if bid == bot_id and f["file_path"] == file_path:
                        entry = f
                        break
        status = 200 if entry else (401 if bot_id is None else 404)
        state.record({"time": time.time(), "method": "_download", "bot_id": bot_id,
                      "params": {"file_path": file_path}, "via": "download", "failed": False,
                      "status": status, "ok": status == 200})
        if bot_id is None:
            return self._send(401, ApiError(401).body())
        if entry is None:
            return self._send(404, ApiError(404).body())
        ctype = mimetypes.guess_type(file_path)[0] or "application/octet-stream"
        return self._send(200, entry["content"], ctype)

    def _control(self, what, query, body):
        state = self.server.state
        q = dict(urllib.parse.parse_qsl(query))
        cmd = self.command
        try:
            doc = None
            if cmd in ("POST", "PUT"):
                try:
                    doc = json.loads(body.decode("utf-8")) if body else {}
                except (ValueError, UnicodeDecodeError):
                    raise ControlError(400, "the body must be JSON")
            if what == "health" and cmd == "GET":
                return self._send(200, {"ok": True})
            if what == "bots" and cmd == "POST":
                return self._send(200, state.add_bot(doc))
            if what == "bots" and cmd == "GET":
                with state.lock:
                    return self._send(200, [Api(state).get_me(b, {})[0]
                                            for b in state.bots.values()])
            if what == "files" and cmd == "POST":
                return self._send(200, state.add_file(doc))
            if what == "chats" and cmd == "POST":
                return self._send(200, state.add_chat(doc))
            if what == "calls" and cmd == "GET":
                try:
                    bot_id = int(q["bot_id"]) if "bot_id" in q else None
                    since = int(q["since"]) if "since" in q else None
                except ValueError:
                    raise ControlError(400, "bot_id and since are integers")
                return self._send(200, state.list_calls(q.get("method"), bot_id, since))
            if what == "calls" and cmd == "DELETE":
                with state.lock:
                    n = len(state.calls)
                    state.calls.clear()
                return self._send(200, {"cleared": n})
            if what == "fail" and cmd == "POST":
                return self._send(200, state.add_failure(doc))
            if what == "fail" and cmd == "GET":
                with state.lock:
                    return self._send(200, [_public_failure(f) for f in state.failures])
            if what == "fail" and cmd == "DELETE":
                with state.lock:
                    state.failures.clear()
                return self._send(200, {"ok": True})
            if what == "deliver" and cmd == "POST":
                return self._send(200, deliver(state, doc))
            if what == "webhooks" and cmd == "GET":
                with state.lock:
                    return self._send(200, {str(b["id"]): dict(b["webhook"],
                                                               pending=len(b["updates"]),
                                                               polling=b["polling"])
                                            for b in state.bots.values()})
            if what == "reset" and cmd == "POST":
                state.reset()
                return self._send(200, {"ok": True})
            raise ControlError(404, f"no control route {cmd} /_fake/{what}")
        except ControlError as e:
            return self._send(e.status, {"error": e.message})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, addr, state):
        self.state = state
        super().__init__(addr, Handler)

    def handle_error(self, request, client_address):
        # The default prints a traceback that may quote a request path, token and all.
        e = sys.exc_info()[1]
        if not isinstance(e, (ConnectionError, TimeoutError)):
            sys.stderr.write(redact(f"fake_telegram: error serving {client_address}: {e!r}")
                             + "\n")
            sys.stderr.flush()


class FakeTelegram:
    """The fake in this process: start() binds and serves on a thread."""

    def __init__(self, host="127.0.0.1", port=0, verbose=False):
        self.state = State(verbose=verbose)
        self.host = host
        self.port = port
        self.server = None
        self.thread = None

    def start(self):
        self.server = _Server((self.host, self.port), self.state)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="fake-telegram",
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.server:
            self.state.stop()
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(5)
            self.server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def url(self):
        return f"http://{self.host}:{self.port}"

    # --- the control API, in-process ---
    def add_bot(self, token, id=None, username=None, first_name=None, **extra):
        spec = {"token": token, **extra}
        for k, v in (("id", id), ("username", username), ("first_name", first_name)):
            if v is not None:
                spec[k] = v
        return self.state.add_bot(spec)

    def add_file(self, token, file_id, file_path, content=b"", file_unique_id=None):
        spec = {"token": token, "file_id": file_id, "file_path": file_path,
                "content_b64": base64.b64encode(content).decode()}
        if file_unique_id:
            spec["file_unique_id"] = file_unique_id
        return self.state.add_file(spec)

    def calls(self, method=None, bot_id=None, since=None):
        return self.state.list_calls(method, bot_id, since)

    def clear_calls(self):
        with self.state.lock:
            self.state.calls.clear()

    def fail(self, method="*", **spec):
        return self.state.add_failure({"method": method, **spec})

    def deliver(self, bot_id, update, timeout=10):
        return deliver(self.state, {"bot_id": bot_id, "update": update, "timeout": timeout})

    def reset(self):
        self.state.reset()


# --- Update builders ------------------------------------------------------------

DEFAULT_BOT = {"id": 123456, "is_bot": True, "first_name": "Helion", "username": "helion_bot"}
DEFAULT_USER = {"id": 1001, "is_bot": False, "first_name": "Ada", "last_name": "Lovelace",
                "username": "ada_l", "language_code": "en"}
OTHER_BOT = {"id": 5550001, "is_bot": True, "first_name": "Other", "username": "other_helper_bot"}
DEFAULT_GROUP = {"id": -1001234567890, "title": "Dagi Test Group", "type": "supergroup"}

_ids_lock = threading.Lock()
_update_ids = itertools.count(100000001)
_message_ids = {}
_file_seq = itertools.count(1)

_COMMAND_RE = re.compile(r"(?:(?<=\s)|^)/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?(?![\w/@])")
_MENTION_RE = re.compile(r"(?<![\w@])@[A-Za-z0-9_]{5,32}(?![\w@])")


def make_user(id=1001, first_name="Ada", username="ada_l", is_bot=False, last_name=None,
              language_code="en"):
    """A User object (language_code only for people, as Telegram sends it)."""
    u = {"id": id, "is_bot": is_bot, "first_name": first_name}
    if last_name:
        u["last_name"] = last_name
    if username:
        u["username"] = username
    if language_code and not is_bot:
        u["language_code"] = language_code
    return u


def private_chat(user):
    c = {"id": user["id"], "first_name": user["first_name"]}
    if user.get("last_name"):
        c["last_name"] = user["last_name"]
    if user.get("username"):
        c["username"] = user["username"]
    c["type"] = "private"
    return c


def text_entities(text):
    """bot_command and mention entities of text, offsets in UTF-16 code units."""
    found = []
    taken = []
    for m in _COMMAND_RE.finditer(text):
        found.append((m.start(), m.end(), "bot_command"))
        taken.append((m.start(), m.end()))
    for m in _MENTION_RE.finditer(text):
        if any(a <= m.start() < b for a, b in taken):
            continue
        found.append((m.start(), m.end(), "mention"))
    found.sort()
    return [{"offset": utf16_len(text[:a]), "length": utf16_len(text[a:b]), "type": t}
            for a, b, t in found]


def _next_message_id(chat_id):
    with _ids_lock:
        mid = _message_ids.get(chat_id, 0) + 1
        _message_ids[chat_id] = mid
        return mid


def _as_user(bot):
    bot = bot or DEFAULT_BOT
    return {"id": bot["id"], "is_bot": True, "first_name": bot.get("first_name", "Bot"),
            "username": bot["username"]}


def make_update(kind="text", text=None, *, bot=None, user=None, chat=None, reply_to=None,
                caption=None, file_id=None, message_id=None, message_thread_id=None,
                date=None, update_id=None):
    """A realistic Update dict with a fresh update_id (increasing across calls).

    kind:
      "text"     a private text message from `user` (default: Ada)
      "mention"  a group message mentioning the bot: "@<bot username> <text>" unless
                 text already holds the mention; the mention entity's offset and
                 length are in UTF-16 code units
      "reply"    a group message replying to the bot's message; reply_to is that
                 Message (e.g. a sendMessage result) or its message_id
      "photo"    a photo (four PhotoSize entries, the largest last, whose file_id is
                 `file_id`) with an optional caption
      "command"  a bot command, "/start" by default
      "from_bot" a group message whose sender is another bot (from.is_bot true)
    bot: the bot as {"id", "username", "first_name"} (a getMe result will do).
    chat: a Chat object to use instead of the default private chat or group.
    """
    kinds = ("text", "mention", "reply", "photo", "command", "from_bot")
    if kind not in kinds:
        raise ValueError(f"kind must be one of {kinds}")
    bot_user = _as_user(bot)
    sender = dict(user) if user else dict(DEFAULT_USER)
    if kind == "from_bot":
        sender = dict(user) if user else dict(OTHER_BOT)
        sender["is_bot"] = True
        sender.pop("language_code", None)
    if chat is None:
        if isinstance(reply_to, dict) and isinstance(reply_to.get("chat"), dict):
            chat = reply_to["chat"]
        elif kind in ("mention", "reply", "from_bot"):
            chat = DEFAULT_GROUP
        else:
            chat = private_chat(sender)
    chat = dict(chat)
    msg = {"message_id": message_id or _next_message_id(chat["id"]), "from": sender,
           "chat": chat, "date": int(date if date is not None else time.time())}
    if message_thread_id is not None:
        msg["message_thread_id"] = message_thread_id
        if chat.get("is_forum"):
            msg["is_topic_message"] = True

    if kind == "text":
        body = "hello" if text is None else text
    elif kind == "mention":
        body = "hello" if text is None else text
        handle = "@" + bot_user["username"]
        if handle.lower() not in body.lower():
            body = f"{handle} {body}"
    elif kind == "reply":
        body = "and what about that?" if text is None else text
        if isinstance(reply_to, dict):
            orig = dict(reply_to)
            orig.pop("reply_to_message", None)
        else:
            orig_id = reply_to
            if orig_id is None:    # the bot's message came before this one
                if message_id is None:
                    orig_id = msg["message_id"]
                    msg["message_id"] = _next_message_id(chat["id"])
                else:
                    orig_id = _next_message_id(chat["id"])
            orig = {"message_id": orig_id, "from": bot_user, "chat": chat,
                    "date": msg["date"] - 30, "text": "An earlier answer from the bot."}
        msg["reply_to_message"] = orig
    elif kind == "command":
        body = "/start" if text is None else text
    elif kind == "from_bot":
        body = "beep boop" if text is None else text
    else:
        body = None

    if kind == "photo":
        n = next(_file_seq)
        base = file_id or f"AgACAgIAAxkBAAIB{n:04d}ZmFrZV9waG90bw"
        sizes = ((90, 51, 1480), (320, 180, 13020), (800, 450, 61345), (1280, 720, 121766))
        photo = []
        for i, (w, h, size) in enumerate(sizes):
            last = i == len(sizes) - 1
            photo.append({"file_id": base if last else f"{base}-{w}",
                          "file_unique_id": f"AQAD{n:04d}{i}x{w}",
                          "file_size": size, "width": w, "height": h})
        msg["photo"] = photo
        if caption is not None or text is not None:
            cap = caption if caption is not None else text
            msg["caption"] = cap
            ents = text_entities(cap)
            if ents:
                msg["caption_entities"] = ents
    else:
        msg["text"] = body
        ents = text_entities(body)
        if ents:
            msg["entities"] = ents

    with _ids_lock:
        uid = update_id if update_id is not None else next(_update_ids)
    return {"update_id": uid, "message": msg}


# --- main -------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description="A fake Telegram Bot API for tests.")
    ap.add_argument("--port", type=int, required=True, help="port to listen on (0: any free)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--verbose", action="store_true",
                    help="one line per request on stderr (tokens redacted)")
    a = ap.parse_args(argv)
    state = State(verbose=a.verbose)
    server = _Server((a.host, a.port), state)

    def on_signal(signum, frame):
        state.stop()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    host, port = server.server_address[:2]
    sys.stdout.write(f"listening on {host}:{port}\n")
    sys.stdout.flush()
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
