"""A Telegram Bot API simulator (the HTTP wire protocol of https://core.telegram.org/bots/api).

It serves `POST /bot<token>/<method>` like the real Bot API (form-encoded, multipart or JSON bodies;
`{"ok": true, "result": ...}` or `{"ok": false, "error_code", "description", "parameters"}`), so tests
drive the real aiogram client end to end. Implemented: getMe, getUpdates (offset confirms, timeout
long-polls), sendMessage, sendPhoto (a multipart upload, `attach://` or a file_id it issued),
editMessageText, editMessageCaption, answerCallbackQuery, setMyCommands, getMyCommands, deleteWebhook,
close. It checks what the real server checks and we rely on: the token (401), HTML parse mode (400
"can't parse entities" on a bad tag or a bare `<`/`&`), 4,096 characters after entity parsing (400
"message is too long"), captions of 1,024 (400 "message caption is too long"), photos (a PNG or JPEG
of at most 10 MB, width + height <= 10,000, sides at most 20:1: else 400 IMAGE_PROCESS_FAILED /
PHOTO_SAVE_FILE_INVALID / PHOTO_INVALID_DIMENSIONS), text edits of a photo and caption edits of a text
(400 "there is no text/caption in the message to edit"), 64-byte callback data (400
BUTTON_DATA_INVALID), an edit that changes nothing (400 "message is not modified"), unknown
chats/messages/queries (400), a user who never started the bot (403).

`outage = 502` makes every request answer 502 until it is set back to None (the Bot API down).
A test injects user messages (`send_text`) and button presses (`press`), makes a method answer 429
with `retry_after` (`rate_limit`), and reads every call from `calls`, each chat's messages as the user
sees them (`messages`), and the answers to presses (`answers`).
"""

from __future__ import annotations

import html
import json
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.sim.loopback import loopback_http

ALLOWED_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a", "code",
                "pre", "blockquote", "tg-emoji"}
MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_PHOTO_BYTES = 10 * 1024 * 1024  # sendPhoto: "The photo must be at most 10 MB in size"
MAX_PHOTO_SIDES = 10_000  # "The photo's width and height must not exceed 10000 in total"
MAX_PHOTO_RATIO = 20  # "Width and height ratio must be at most 20"


class ApiError(Exception):
    def __init__(self, code: int, description: str, parameters: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters


class _Entities(HTMLParser):
    """Parses Telegram-flavoured HTML the way the Bot API does: only its tags, balanced, entities escaped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            raise ApiError(400, f"Bad Request: can't parse entities: Unsupported start tag \"{tag}\"")
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            raise ApiError(400, f"Bad Request: can't parse entities: Unmatched end tag \"{tag}\"")
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse_html(text: str) -> str:
    """The plain text Telegram would show, or ApiError 400 like the real parser."""
    # A bare '<' that does not start a tag, or an '&' that is not an entity, is an error in Telegram.
    if re.search(r"<(?![a-zA-Z/])", text):
        raise ApiError(400, "Bad Request: can't parse entities: Unexpected character '<'")
    if re.search(r"&(?!(?:[a-zA-Z]+|#\d+|#x[0-9a-fA-F]+);)", text):
        raise ApiError(400, "Bad Request: can't parse entities: Character '&' is reserved")
    p = _Entities()
    p.feed(text)
    p.close()
    if p.stack:
        raise ApiError(400, f"Bad Request: can't parse entities: Can't find end tag corresponding to start tag "
                       f"\"{p.stack[-1]}\"")
    return html.unescape("".join(p.text))


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@dataclass(frozen=True)
class Upload:
    """A file part of a multipart request (what `attach://<name>` refers to)."""

    filename: str
    data: bytes


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG or baseline/progressive JPEG, read from its header; None if neither."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                return None
            marker, length = data[i + 1], int.from_bytes(data[i + 2:i + 4], "big")
            if marker in (0xC0, 0xC1, 0xC2):
                return int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7], "big")
            i += 2 + length
    return None


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    at: float
    status: int = 200


@dataclass
class SentMessage:
    chat_id: int
    message_id: int
    text: str  # plain, as shown
    html: str | None  # what the bot sent, when parse_mode was HTML
    reply_markup: dict[str, Any] | None
    edits: int = 0
    photo: bytes | None = None  # a photo message: the image as uploaded (`text` is then its caption)
    photo_size: tuple[int, int] | None = None

    def buttons(self) -> list[dict[str, Any]]:
        rows = (self.reply_markup or {}).get("inline_keyboard") or []
        return [b for row in rows for b in row]


@dataclass
class TelegramSim:
    token: str = "123456:TEST-sim-token-abcdefghijklmnopqrstu"
    bot_username: str = "aiops_sim_bot"
    calls: list[Call] = field(default_factory=list)
    messages: dict[int, list[SentMessage]] = field(default_factory=dict)  # chat id -> bot messages, in order
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)  # callback query id -> answer params
    commands: list[dict[str, Any]] = field(default_factory=list)
    chats: dict[int, dict[str, Any]] = field(default_factory=dict)
    blocked: set[int] = field(default_factory=set)  # users who never started the bot / blocked it: 403
    url: str = ""
    # An outage: while set (e.g. 502), every request answers it (Telegram's "Bad Gateway" when its
    # front end is up and the Bot API is not) and changes nothing; `attempts` counts requests, also those.
    outage: int | None = None
    attempts: int = 0

    def __post_init__(self) -> None:
        self._cond = threading.Condition()
        self._updates: list[dict[str, Any]] = []
        self._next_update = 1
        self._next_message: dict[int, int] = {}
        self._queries: dict[str, dict[str, Any]] = {}
        self._rate_limits: dict[str, list[int]] = {}  # method -> [times left, retry_after]
        self._file_ids: dict[str, bytes] = {}  # photos sent, by the file_id returned for them
        self.bot_id = int(self.token.split(":")[0])

    # ------------------------------------------------------------------------------ test API --
    def user(self, user_id: int, first_name: str = "User", username: str | None = None) -> dict[str, Any]:
        u: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name, "language_code": "en"}
        if username:
            u["username"] = username
        return u

    def private_chat(self, user: dict[str, Any]) -> dict[str, Any]:
        return {"id": user["id"], "type": "private", "first_name": user["first_name"]}

    def group_chat(self, chat_id: int, title: str = "ops") -> dict[str, Any]:
        return {"id": chat_id, "type": "supergroup", "title": title}

    def _push(self, update: dict[str, Any]) -> int:
        with self._cond:
            update["update_id"] = self._next_update
            self._next_update += 1
            self._updates.append(update)
            self._cond.notify_all()
            return int(update["update_id"])

    def _new_message_id(self, chat_id: int) -> int:
        n = self._next_message.get(chat_id, 0) + 1
        self._next_message[chat_id] = n
        return n

    def send_text(self, user: dict[str, Any], text: str, chat: dict[str, Any] | None = None) -> int:
        """The user writes `text` (in a private chat with the bot unless `chat` is given)."""
        chat = chat or self.private_chat(user)
        with self._cond:
            self.chats[chat["id"]] = chat
            mid = self._new_message_id(chat["id"])
        msg: dict[str, Any] = {"message_id": mid, "date": int(time.time()), "chat": chat, "from": user, "text": text}
        if text.startswith("/"):
            cmd = text.split()[0]
            msg["entities"] = [{"type": "bot_command", "offset": 0, "length": utf16_len(cmd)}]
        return self._push({"message": msg})

    def press(self, user: dict[str, Any], message: SentMessage, data: str, *, forged: bool = False) -> str:
        """The user presses the inline button carrying `data` under the bot's `message`; returns the query id.

        `forged=True` sends `data` whatever the buttons carry: Telegram's apps only send a button's own
        data, but an MTProto client (messages.getBotCallbackAnswer) can send any bytes for any message."""
        if not forged and data not in [b.get("callback_data") for b in message.buttons()]:
            raise AssertionError(f"no button with data {data!r} under message {message.message_id}")
        with self._cond:
            qid = f"{len(self._queries) + 1}{int(time.time() * 1000) % 100000}"
            msg = self._message_json(message)  # a photo card arrives with its photo and caption
            self._queries[qid] = {"from": user, "answered": False}
        self._push({"callback_query": {"id": qid, "from": user, "message": msg,
                                       "chat_instance": str(message.chat_id), "data": data}})
        return qid

    def rate_limit(self, method: str, times: int = 1, retry_after: int = 1) -> None:
        """The next `times` calls of `method` answer 429 Too Many Requests with `retry_after`."""
        with self._cond:
            self._rate_limits[method] = [times, retry_after]

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Block until `predicate()` is truthy (re-checked on every call the bot makes)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout} s; last calls: "
                                         f"{[(c.method, c.status) for c in self.calls[-8:]]}")
                self._cond.wait(min(left, 0.1))

    async def until(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        """`wait_for` for async tests: polls without blocking the event loop the bot runs on."""
        import asyncio

        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s; last calls: "
                                     f"{[(c.method, c.status) for c in self.calls[-8:]]}")
            await asyncio.sleep(0.02)

    def chat_log(self, chat_id: int) -> list[SentMessage]:
        with self._cond:
            return list(self.messages.get(chat_id, []))

    def calls_of(self, method: str) -> list[Call]:
        with self._cond:
            return [c for c in self.calls if c.method == method]

    def answered(self, qid: str) -> dict[str, Any] | None:
        with self._cond:
            return self.answers.get(qid)

    # -------------------------------------------------------------------------------- server --
    def _me(self) -> dict[str, Any]:
        return {"id": self.bot_id, "is_bot": True, "first_name": "aiops", "username": self.bot_username}

    def _message_json(self, m: SentMessage) -> dict[str, Any]:
        chat = self.chats.get(m.chat_id) or {"id": m.chat_id, "type": "private" if m.chat_id > 0 else "supergroup",
                                              **({"first_name": "x"} if m.chat_id > 0 else {"title": "ops"})}
        out: dict[str, Any] = {"message_id": m.message_id, "date": int(time.time()), "chat": chat,
                               "from": self._me()}
        if m.photo is not None and m.photo_size is not None:
            w, h = m.photo_size
            uid = f"sim-{m.chat_id}-{m.message_id}"
            out["photo"] = [{"file_id": f"photo-{uid}", "file_unique_id": uid, "width": w, "height": h,
                             "file_size": len(m.photo)}]
            if m.text:
                out["caption"] = m.text
        else:
            out["text"] = m.text
        if m.edits:
            out["edit_date"] = int(time.time())
        if m.reply_markup:
            out["reply_markup"] = m.reply_markup
        return out

    def _text(self, params: dict[str, Any]) -> tuple[str, str | None]:
        raw = params.get("text")
        if not isinstance(raw, str) or not raw:
            raise ApiError(400, "Bad Request: message text is empty")
        mode = (params.get("parse_mode") or "").lower()
        plain = parse_html(raw) if mode == "html" else raw
        if not plain.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if utf16_len(plain) > MAX_TEXT:
            raise ApiError(400, "Bad Request: message is too long")
        return plain, raw if mode == "html" else None

    def _caption(self, params: dict[str, Any]) -> tuple[str, str | None]:
        raw = params.get("caption")
        if raw is None or raw == "":
            return "", None
        if not isinstance(raw, str):
            raise ApiError(400, "Bad Request: can't parse caption")
        mode = (params.get("parse_mode") or "").lower()
        plain = parse_html(raw) if mode == "html" else raw
        if utf16_len(plain) > MAX_CAPTION:
            raise ApiError(400, "Bad Request: message caption is too long")
        return plain, raw if mode == "html" else None

    def _photo(self, params: dict[str, Any]) -> tuple[bytes, tuple[int, int]]:
        photo = params.get("photo")
        if isinstance(photo, str) and photo.startswith("attach://"):
            photo = params.get(photo.removeprefix("attach://"))
        elif isinstance(photo, str) and photo in self._file_ids:
            photo = Upload("reused", self._file_ids[photo])
        if photo is None:
            raise ApiError(400, "Bad Request: there is no photo in the request")
        if not isinstance(photo, Upload):
            raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        if len(photo.data) > MAX_PHOTO_BYTES:
            raise ApiError(400, "Bad Request: PHOTO_SAVE_FILE_INVALID")
        size = image_size(photo.data)
        if size is None:
            raise ApiError(400, "Bad Request: IMAGE_PROCESS_FAILED")
        w, h = size
        if w < 1 or h < 1 or w + h > MAX_PHOTO_SIDES or max(w, h) > MAX_PHOTO_RATIO * min(w, h):
            raise ApiError(400, "Bad Request: PHOTO_INVALID_DIMENSIONS")
        return photo.data, size

    def _find(self, params: dict[str, Any]) -> SentMessage:
        chat_id = self._chat_id(params)
        found = [m for m in self.messages.get(chat_id, []) if m.message_id == int(params.get("message_id", 0))]
        if not found:
            raise ApiError(400, "Bad Request: message to edit not found")
        return found[0]

    def _markup(self, params: dict[str, Any]) -> dict[str, Any] | None:
        markup = params.get("reply_markup")
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
        for row in markup.get("inline_keyboard") or []:
            for b in row:
                data = b.get("callback_data")
                if data is not None and not (1 <= len(str(data).encode()) <= 64):
                    raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
        return markup

    def _chat_id(self, params: dict[str, Any]) -> int:
        try:
            chat_id = int(params["chat_id"])
        except (KeyError, TypeError, ValueError):
            raise ApiError(400, "Bad Request: chat not found") from None
        return chat_id

    def handle(self, method: str, params: dict[str, Any]) -> Any:  # noqa: C901 - one branch per method
        with self._cond:
            limit = self._rate_limits.get(method)
            if limit and limit[0] > 0:
                limit[0] -= 1
                raise ApiError(429, f"Too Many Requests: retry after {limit[1]}", {"retry_after": limit[1]})
        if method == "getMe":
            return self._me()
        if method == "deleteWebhook":
            return True
        if method == "close":
            return True
        if method == "setMyCommands":
            cmds = params.get("commands")
            if not isinstance(cmds, list) or not all(
                    isinstance(c, dict) and re.fullmatch(r"[a-z0-9_]{1,32}", str(c.get("command", "")))
                    and 1 <= len(str(c.get("description", ""))) <= 256 for c in cmds):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            with self._cond:
                self.commands = cmds
            return True
        if method == "getMyCommands":
            return self.commands
        if method == "getUpdates":
            return self._get_updates(params)
        if method == "sendMessage":
            chat_id = self._chat_id(params)
            if chat_id in self.blocked:
                raise ApiError(403, "Forbidden: bot can't initiate conversation with a user")
            plain, raw = self._text(params)
            markup = self._markup(params)
            with self._cond:
                m = SentMessage(chat_id, self._new_message_id(chat_id), plain, raw, markup)
                self.messages.setdefault(chat_id, []).append(m)
                return self._message_json(m)
        if method == "sendPhoto":
            chat_id = self._chat_id(params)
            if chat_id in self.blocked:
                raise ApiError(403, "Forbidden: bot can't initiate conversation with a user")
            data, size = self._photo(params)
            plain, raw = self._caption(params)
            markup = self._markup(params)
            with self._cond:
                m = SentMessage(chat_id, self._new_message_id(chat_id), plain, raw, markup, photo=data,
                                photo_size=size)
                self.messages.setdefault(chat_id, []).append(m)
                out = self._message_json(m)
                self._file_ids[out["photo"][0]["file_id"]] = data
                return out
        if method in ("editMessageText", "editMessageCaption"):
            caption = method == "editMessageCaption"
            plain, raw = self._caption(params) if caption else self._text(params)
            markup = self._markup(params)
            with self._cond:
                m = self._find(params)
                if caption and m.photo is None:
                    raise ApiError(400, "Bad Request: there is no caption in the message to edit")
                if not caption and m.photo is not None:
                    raise ApiError(400, "Bad Request: there is no text in the message to edit")
                if m.text == plain and m.html == raw and m.reply_markup == markup:
                    raise ApiError(400, "Bad Request: message is not modified: specified new message content "
                                   "and reply markup are exactly the same as a current content and reply markup "
                                   "of the message")
                m.text, m.html, m.reply_markup = plain, raw, markup
                m.edits += 1
                return self._message_json(m)
        if method == "answerCallbackQuery":
            qid = str(params.get("callback_query_id", ""))
            with self._cond:
                q = self._queries.get(qid)
                if q is None or q["answered"]:
                    raise ApiError(400, "Bad Request: query is too old and response timeout expired or query ID "
                                   "is invalid")
                if len(str(params.get("text") or "")) > 200:
                    raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
                q["answered"] = True
                self.answers[qid] = params
            return True
        raise ApiError(404, "Not Found: method not found")

    def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        timeout = min(float(params.get("timeout") or 0), 50.0)
        allowed = params.get("allowed_updates") or None
        deadline = time.monotonic() + timeout
        with self._cond:
            if offset:
                self._updates = [u for u in self._updates if u["update_id"] >= offset]  # confirmed ones go
            while True:
                ready = [u for u in self._updates
                         if u["update_id"] >= offset and (not allowed or any(k in u for k in allowed))]
                left = deadline - time.monotonic()
                if ready or left <= 0 or self._closing:
                    return ready[:100]
                self._cond.wait(min(left, 0.2))

    _closing = False

    def _record(self, method: str, params: dict[str, Any], status: int) -> None:
        with self._cond:
            self.calls.append(Call(method, params, time.time(), status))
            self._cond.notify_all()


def _coerce(value: str) -> Any:
    """Form fields arrive as strings; JSON objects/arrays/booleans/numbers as their JSON text (aiogram)."""
    if value[:1] in "[{" or value in ("true", "false", "null"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _params(content_type: str, body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    if content_type.startswith("application/json"):
        data = json.loads(body)
        return data if isinstance(data, dict) else {}
    if content_type.startswith("multipart/form-data"):
        msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
        out: dict[str, Any] = {}
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name:
                payload = part.get_payload(decode=True)
                filename = part.get_filename()
                if filename is not None:  # a file: kept as bytes, referred to as attach://<name>
                    out[str(name)] = Upload(str(filename), payload if isinstance(payload, bytes) else b"")
                    continue
                out[str(name)] = _coerce(payload.decode() if isinstance(payload, bytes) else str(payload or ""))
        return out
    return {k: _coerce(v) for k, v in urllib.parse.parse_qsl(body.decode(), keep_blank_values=True)}


def _handler(sim: TelegramSim) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (shutdown mid long-poll)
                pass

        def _body(self) -> bytes:
            """The request body: Content-Length, or chunked (aiohttp streams multipart uploads so)."""
            if "chunked" not in (self.headers.get("Transfer-Encoding") or "").lower():
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()  # the CRLF after each chunk

        def _serve(self) -> None:
            m = re.fullmatch(r"/bot([^/]+)/([A-Za-z]+)", urllib.parse.urlsplit(self.path).path)
            body = self._body()
            if not m:
                self._reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})
                return
            token, method = m.group(1), m.group(2)
            with sim._cond:
                sim.attempts += 1
            if sim.outage is not None:
                self._reply(sim.outage, {"ok": False, "error_code": sim.outage, "description": "Bad Gateway"})
                return
            try:
                params = _params(self.headers.get("Content-Type", ""), body)
            except (ValueError, UnicodeDecodeError):
                self._reply(400, {"ok": False, "error_code": 400, "description": "Bad Request: invalid body"})
                return
            if token != sim.token:
                sim._record(method, params, 401)
                self._reply(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
                return
            try:
                result = sim.handle(method, params)
            except ApiError as exc:
                sim._record(method, params, exc.code)
                err: dict[str, Any] = {"ok": False, "error_code": exc.code, "description": exc.description}
                if exc.parameters:
                    err["parameters"] = exc.parameters
                self._reply(exc.code, err)
                return
            sim._record(method, params, 200)
            self._reply(200, {"ok": True, "result": result})

        do_POST = _serve
        do_GET = _serve

    return Handler


@contextmanager
def telegram_sim(**kw: Any) -> Iterator[TelegramSim]:
    """A running simulator on a free loopback port; `sim.url` is the base for TELEGRAM_API_URL."""
    sim = TelegramSim(**kw)

    def release_long_polls() -> None:
        with sim._cond:
            sim._closing = True
            sim._cond.notify_all()

    with loopback_http(_handler(sim), on_close=release_long_polls) as base:
        sim.url = base
        yield sim
