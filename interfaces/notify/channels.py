"""Notification channels: Telegram, e-mail (SMTP + STARTTLS), Slack (incoming webhook, Block Kit),
PagerDuty (Events API v2).

A channel says which events it wants and sends one notification, raising on failure. `Permanent` means
retrying cannot help (the service rejected the payload or the credentials: 4xx other than 429): the
outbox dead-letters it at once. Anything else (timeouts, 5xx, 429, a refused connection) is retried with
backoff; `RetryLater.after` carries a server's Retry-After.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from email.message import EmailMessage
from typing import Any, Protocol

import httpx

from core.links import safe_url
from core.settings import SEVERITY_RANK, Settings
from interfaces.charts import warm
from interfaces.notify.events import LIFECYCLE, EventKind, Notification
from interfaces.render import render_report
from interfaces.telegram.render import b, esc
from store.telegram import telegram_store

log = logging.getLogger(__name__)


class Permanent(Exception):
    """Delivery can never succeed as is (bad payload, bad credentials): dead-letter, do not retry."""


class RetryLater(Exception):
    def __init__(self, message: str, after: float | None = None) -> None:
        super().__init__(message)
        self.after = after


class Channel(Protocol):
    name: str

    def wants(self, n: Notification) -> bool: ...

    async def send(self, n: Notification) -> None: ...

    async def close(self) -> None: ...


def admits(settings: Settings, channel: str, severity: str) -> bool:
    """Severity routing: NOTIFY_ROUTES gives a channel's minimum severity (default: everything)."""
    minimum = settings.notify_routes.get(channel, "info")
    return SEVERITY_RANK.get(severity.lower(), 1) >= SEVERITY_RANK[minimum]


def _http_error(service: str, resp: httpx.Response) -> Exception:
    text = resp.text[:200].replace("\n", " ")
    if resp.status_code == 429 or resp.status_code >= 500:
        after = resp.headers.get("Retry-After")
        return RetryLater(f"{service} answered {resp.status_code}: {text}",
                          float(after) if after and after.replace(".", "", 1).isdigit() else None)
    return Permanent(f"{service} refused the notification ({resp.status_code}): {text}")


def _report_lines(n: Notification) -> list[str]:
    r = n.report
    return render_report(r, pending={} if n.pending else None).splitlines()


# ------------------------------------------------------------------------------------ telegram --
class TelegramChannel:
    """Incident cards in the ADMIN_CHAT_ID chats: sent once, then edited in place; escalations also ping.
    What people do to the incident (acknowledged, assigned, commented, closed, from any interface) redraws
    the card as it is now: who is on it, and once closed, the reason and no more decision buttons."""

    name = "telegram"
    guards_itself = True  # make_bot's middleware charges "notify-telegram" per Bot API request

    def __init__(self, settings: Settings, bot: Any | None = None) -> None:
        self.settings = settings
        self._bot = bot
        self._own_bot = bot is None
        self.store = telegram_store(settings)

        warm()  # cards carry charts: matplotlib's first import is slow, do it before the first alert

    @property
    def bot(self) -> Any:
        if self._bot is None:
            from interfaces.telegram.client import make_bot

            self._bot = make_bot(self.settings)
        return self._bot

    def wants(self, n: Notification) -> bool:
        return True

    async def send(self, n: Notification) -> None:
        """Every ADMIN_CHAT_ID chat. A chat that refuses for good (the user never started the bot, the bot
        left the group) is logged and skipped; the others still get it. Only if all refuse is it Permanent."""
        from aiogram.exceptions import (
            TelegramBadRequest,
            TelegramForbiddenError,
            TelegramRetryAfter,
            TelegramUnauthorizedError,
        )

        from interfaces.telegram import cards, photos

        chats = self.settings.telegram_chat_ids
        refused: list[str] = []
        for chat_id in chats:
            stage = cards.STAGES.get(n.event.value, 0)
            if n.event in LIFECYCLE:  # the card as it stands, redrawn with who is on it (closing is final)
                card = next((c for c in self.store.cards(n.incident_id) if c.chat_id == chat_id), None)
                stage = max(stage, card.stage if card else 0, cards.natural_stage(n.report))
            try:
                if n.event is EventKind.ESCALATION:  # the card as it is, plus one message that pings
                    if self.store.pinged(n.incident_id, chat_id, "escalation"):
                        continue  # a retry after a later chat failed
                    await cards.show(self.bot, self.store, chat_id, n.report, cards.natural_stage(n.report))
                    await self.bot.send_message(chat_id, f"🔥 {b('Escalation')}: {esc(n.summary)}")
                    self.store.mark_pinged(n.incident_id, chat_id, "escalation")
                    continue
                await cards.show(self.bot, self.store, chat_id, n.report, stage)
                if n.event in (EventKind.VERIFIED, EventKind.NOT_RECOVERED) and not self.store.pinged(
                        n.incident_id, chat_id, "verification_chart"):  # the metric after the fix, once
                    if await photos.send_verification(self.bot, chat_id, n.report):
                        self.store.mark_pinged(n.incident_id, chat_id, "verification_chart")
            except TelegramUnauthorizedError as exc:
                raise Permanent(f"telegram refused the token: {exc.message}") from None
            except TelegramRetryAfter as exc:
                raise RetryLater(f"telegram rate limit: {exc.message}", float(exc.retry_after)) from None
            except (TelegramForbiddenError, TelegramBadRequest) as exc:
                if isinstance(exc, TelegramBadRequest) and "chat not found" not in exc.message:
                    raise
                log.error("telegram: chat %s refuses notifications (%s); skipped", chat_id, exc.message)
                refused.append(f"{chat_id}: {exc.message}")
        if refused and len(refused) == len(chats):
            raise Permanent("telegram: every chat refused: " + "; ".join(refused))

    async def close(self) -> None:
        if self._own_bot and self._bot is not None:
            await self._bot.session.close()


# --------------------------------------------------------------------------------------- email --
class EmailChannel:
    """One mail per event. STARTTLS before anything else (certificate verified); login only over TLS."""

    name = "email"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def wants(self, n: Notification) -> bool:
        return True

    def _message(self, n: Notification) -> EmailMessage:
        s = self.settings
        msg = EmailMessage()
        msg["Subject"] = f"[aiops] {n.severity.upper()} {n.event.value.replace('_', ' ')}: {n.title[:150]}"
        msg["From"] = s.SMTP_FROM
        msg["To"] = ", ".join(a.strip() for a in (s.SMTP_TO or "").split(",") if a.strip())
        msg["Message-ID"] = f"<{n.incident_id}.{n.event.value}@aiops>"  # stable: a resend is recognisable
        msg["X-Aiops-Incident"] = n.incident_id
        msg["X-Aiops-Event"] = n.event.value
        msg.set_content("\n".join([n.summary, "", *_report_lines(n)]))
        return msg

    def _transact(self, smtp: smtplib.SMTP, msg: EmailMessage) -> None:
        s = self.settings
        smtp.ehlo()
        if s.SMTP_STARTTLS:
            ctx = ssl.create_default_context(cafile=str(s.SMTP_CA_BUNDLE) if s.SMTP_CA_BUNDLE else None)
            smtp.starttls(context=ctx)
            smtp.ehlo()
        if s.SMTP_USER:
            if not s.SMTP_STARTTLS:
                raise Permanent("refusing to send SMTP credentials without STARTTLS (SMTP_STARTTLS=false)")
            smtp.login(s.SMTP_USER, s.SMTP_PASSWORD or "")
        smtp.send_message(msg)

    def _send_sync(self, msg: EmailMessage) -> None:
        """Deliver one mail. Once the server has accepted it (send_message returned) it is delivered: a
        failing QUIT afterwards (a 421 from a server shutting down, a dropped connection) is logged, not
        raised, or the outbox would send the same mail again (or dead-letter a delivered one)."""
        s = self.settings
        assert s.SMTP_HOST
        try:
            smtp = smtplib.SMTP(s.SMTP_HOST, s.SMTP_PORT, timeout=s.NOTIFY_TIMEOUT)
            try:
                self._transact(smtp, msg)
            except BaseException:
                smtp.close()
                raise
        except smtplib.SMTPAuthenticationError as exc:
            raise Permanent(f"SMTP login refused: {exc.smtp_code}") from None
        except smtplib.SMTPNotSupportedError as exc:
            raise Permanent(f"SMTP server does not offer STARTTLS: {exc}") from None
        except smtplib.SMTPResponseException as exc:
            if 500 <= exc.smtp_code < 600:
                raise Permanent(f"SMTP refused the message: {exc.smtp_code} {exc.smtp_error!r}") from None
            raise RetryLater(f"SMTP temporary failure: {exc.smtp_code}") from None
        try:
            code, reply = smtp.docmd("QUIT")
            if code != 221:
                log.warning("email: %s:%s accepted %s but answered QUIT with %s %r; counted as delivered",
                            s.SMTP_HOST, s.SMTP_PORT, msg["Message-ID"], code, reply[:100])
        except (smtplib.SMTPException, OSError) as exc:
            log.warning("email: %s:%s accepted %s but QUIT failed (%s); counted as delivered", s.SMTP_HOST,
                        s.SMTP_PORT, msg["Message-ID"], exc)
        finally:
            smtp.close()

    async def send(self, n: Notification) -> None:
        await asyncio.to_thread(self._send_sync, self._message(n))

    async def close(self) -> None:
        return None


# --------------------------------------------------------------------------------------- slack --
def _mrkdwn(text: object) -> str:
    """Slack's escaping for mrkdwn: only &, < and > (they start links, mentions and entities)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_EMOJI = {EventKind.OPENED: ":rotating_light:", EventKind.AWAITING: ":hourglass:", EventKind.DECISION: ":ballot_box:",
          EventKind.AUTO_FIX: ":robot_face:", EventKind.EXECUTED: ":gear:", EventKind.VERIFIED: ":white_check_mark:",
          EventKind.NOT_RECOVERED: ":fire:", EventKind.ESCALATION: ":sos:", EventKind.ACKNOWLEDGED: ":eyes:",
          EventKind.ASSIGNED: ":raising_hand:", EventKind.COMMENTED: ":speech_balloon:",
          EventKind.CLOSED: ":heavy_check_mark:"}


def _slack_link(url: str, label: str) -> str:
    """`<url|label>`, both escaped; a `|` in the URL is percent-encoded (it would end the URL part)."""
    checked = safe_url(url)
    text = _mrkdwn(label).replace("|", "/")
    return f"<{_mrkdwn(checked.replace('|', '%7C'))}|{text}>" if checked else text


def slack_payload(n: Notification) -> dict[str, Any]:
    r = n.report
    fields = [{"type": "mrkdwn", "text": f"*Incident*\n`{_mrkdwn(r.incident_id)}`"},
              {"type": "mrkdwn", "text": f"*Severity*\n{_mrkdwn(n.severity)}"},
              {"type": "mrkdwn", "text": f"*Status*\n{_mrkdwn(r.status.value)}"}]
    if r.plan:
        fields.append({"type": "mrkdwn", "text": f"*Plan*\n`{_mrkdwn(r.plan.id)}` (risk {_mrkdwn(r.plan.risk.value)})"})
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"{n.event.value.replace('_', ' ')}: {n.title}"[:150],
                                    "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{_EMOJI[n.event]} {_mrkdwn(n.summary)}"[:3000]},
         "fields": fields},
    ]
    if r.hypotheses:
        h = r.hypotheses[0]
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": (
            f"*Likely cause* ({h.confidence:.0%}): *{_mrkdwn(h.component)}*: {_mrkdwn(h.cause)}")[:3000]}})
    if r.links:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(
            _slack_link(lk.url, lk.label) for lk in r.links)[:3000]}]})
    if n.pending and r.plan:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _mrkdwn(
            f"approve in Telegram, or: aiops approve {r.plan.id} --by NAME")[:3000]}]})
    # the top-level text is the notification fallback, parsed as mrkdwn: escaped like the sections
    return {"text": _mrkdwn(f"[aiops] {n.event.value}: {n.title}")[:3000], "blocks": blocks}


class SlackChannel:
    name = "slack"

    def __init__(self, settings: Settings) -> None:
        assert settings.SLACK_WEBHOOK_URL
        self.url = settings.SLACK_WEBHOOK_URL
        self.client = httpx.AsyncClient(timeout=settings.NOTIFY_TIMEOUT)

    def wants(self, n: Notification) -> bool:
        return True

    async def send(self, n: Notification) -> None:
        resp = await self.client.post(self.url, json=slack_payload(n))
        if resp.status_code != 200:
            raise _http_error("Slack", resp)

    async def close(self) -> None:
        await self.client.aclose()


# ----------------------------------------------------------------------------------- pagerduty --
_PD_SEVERITY = {"critical": "critical", "page": "critical", "error": "error", "high": "error", "warning": "warning"}


def pagerduty_event(n: Notification, routing_key: str) -> dict[str, Any] | None:
    """Trigger on open and escalation, acknowledge on approval or when a person acknowledges it, resolve
    on verified recovery or when a person closes it."""
    r = n.report
    if n.event in (EventKind.OPENED, EventKind.ESCALATION):
        action = "trigger"
    elif n.event is EventKind.DECISION and r.approval and r.approval.valid and r.approval.decision == "approve":
        action = "acknowledge"
    elif n.event is EventKind.ACKNOWLEDGED:
        action = "acknowledge"
    elif n.event in (EventKind.VERIFIED, EventKind.CLOSED):
        action = "resolve"
    else:
        return None
    event: dict[str, Any] = {"routing_key": routing_key, "event_action": action, "dedup_key": r.incident_id,
                             "client": "aiops"}
    if action == "trigger":
        top = r.hypotheses[0] if r.hypotheses else None
        event["payload"] = {
            "summary": f"{n.title}: {n.summary}"[:1024],
            "source": (r.plan.actions[0].target if r.plan and r.plan.actions else r.triage.group or "aiops")[:255],
            "severity": _PD_SEVERITY.get(n.severity.lower(), "info"),
            "timestamp": r.created_at.isoformat(),
            "component": top.component if top else None,
            "group": r.triage.group or None,
            "class": r.triage.category,
            "custom_details": {"incident_id": r.incident_id, "status": r.status.value,
                               "plan_id": r.plan.id if r.plan else None,
                               "cause": top.cause if top else None},
        }
        event["payload"] = {k: v for k, v in event["payload"].items() if v is not None}
        links = [{"href": url, "text": lk.label[:100]} for lk in r.links if (url := safe_url(lk.url))]
        if links:
            event["links"] = links
    return event


class PagerDutyChannel:
    name = "pagerduty"

    def __init__(self, settings: Settings) -> None:
        assert settings.PAGERDUTY_ROUTING_KEY
        self.key = settings.PAGERDUTY_ROUTING_KEY
        self.url = settings.PAGERDUTY_EVENTS_URL
        self.client = httpx.AsyncClient(timeout=settings.NOTIFY_TIMEOUT)

    def wants(self, n: Notification) -> bool:
        return pagerduty_event(n, self.key) is not None

    async def send(self, n: Notification) -> None:
        event = pagerduty_event(n, self.key)
        if event is None:
            return
        resp = await self.client.post(self.url, json=event)
        if resp.status_code != 202:
            raise _http_error("PagerDuty", resp)

    async def close(self) -> None:
        await self.client.aclose()


def enabled_channels(settings: Settings, telegram_bot: Any | None = None) -> list[Channel]:
    channels: list[Channel] = []
    if settings.ENABLE_TELEGRAM_NOTIFICATIONS and settings.TELEGRAM_TOKEN and settings.telegram_chat_ids:
        channels.append(TelegramChannel(settings, telegram_bot))
    if settings.ENABLE_EMAIL_NOTIFICATIONS:
        channels.append(EmailChannel(settings))
    if settings.ENABLE_SLACK_NOTIFICATIONS:
        channels.append(SlackChannel(settings))
    if settings.ENABLE_PAGERDUTY:
        channels.append(PagerDutyChannel(settings))
    return channels
