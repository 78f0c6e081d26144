"""The deterministic intent parser for free text, in English and Russian (the bot without an LLM).

It recognises the same intents as the commands (status, pending plans, incidents, one incident, an
investigation of a service over a time range, help) and says which language the question was in, so
the answer comes back in it. Words that sound like a decision ("approve", "одобряю") are recognised
only to say that free text never approves or rejects: that takes a button or /approve.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel

from core.models import utcnow

Kind = Literal["status", "pending", "incidents", "show", "plan", "analyze", "help", "decision", "unknown"]

_INCIDENT = re.compile(r"\binc-[0-9a-f]{6,32}\b")
_PLAN = re.compile(r"\bplan-[0-9a-f]{6,32}\b")
_SERVICE = r"(?P<svc>[A-Za-z][A-Za-z0-9_.-]*[A-Za-z0-9]|[A-Za-z])"
_STOP = {"the", "a", "an", "service", "my", "our", "it", "this", "that", "there", "going", "up", "wrong", "so",
         "slow", "down", "failing", "broken", "since", "last", "today", "now", "with", "on", "of", "for", "in",
         "is", "are", "happening"}

_EN_ANALYZE = re.compile(
    r"(?:why\s+(?:is|are|does|do|did|was)|what(?:'s|\s+is)\s+(?:wrong|up|going\s+on|happening)\s+with|"
    r"analy[sz]e|investigate|diagnose|check|look\s+at|what\s+about|how\s+is|how's|problems?\s+with)\s+"
    r"(?:the\s+)?(?:service\s+)?" + _SERVICE, re.I)
_RU_ANALYZE = re.compile(
    r"(?:что\s+(?:с|со)|почему|проверь|проанализируй|разбери(?:сь)?(?:\s+с)?|как\s+там|посмотри(?:\s+на)?|"
    r"проблем\w*\s+(?:с|у)|диагностируй|что\s+случилось\s+с)\s+(?:сервис\w*\s+)?(?:[а-яё]+\s+)?" + _SERVICE, re.I)
_LATIN = re.compile(r"\b[A-Za-z][A-Za-z0-9_.-]*[A-Za-z0-9]\b")

_RULES: list[tuple[Kind, re.Pattern[str]]] = [
    ("decision", re.compile(r"^\s*(?:i\s+)?(?:approve|reject|approved|rejected|go\s+ahead|do\s+it|yes,?\s+fix)\b|"
                            r"^\s*(?:одобр\w*|утвер\w*|отклон\w*|подтвер\w*|делай|давай)\b", re.I)),
    ("pending", re.compile(r"pending|await\w*\s+approv\w*|wait\w*\s+(?:for\s+)?approv\w*|plans?\b|"
                           r"ожида\w*|на\s+утвержд\w*|соглас\w*|план\w*", re.I)),
    ("incidents", re.compile(r"\bincidents?\b|what(?:'s|\s+is)\s+open|open\s+issues|инцидент\w*|"
                             r"что\s+(?:открыто|горит|сломалось)", re.I)),
    ("status", re.compile(r"\bstatus\b|\bhealth\w*|breakers?|how\s+are\s+(?:things|we)|self.?heal\w*|"
                          r"статус\w*|состояни\w*|здоров\w*|как\s+дела", re.I)),
    ("help", re.compile(r"^\s*(?:help|what\s+can\s+you\s+do|commands|помо\w+|справк\w*|что\s+ты\s+умеешь|"
                        r"команды)\b", re.I)),
]


class Intent(BaseModel):
    kind: Kind
    lang: Literal["en", "ru"] = "en"
    service: str | None = None
    time_range: str = "1h"
    incident_id: str | None = None
    plan_id: str | None = None


def language(text: str) -> Literal["en", "ru"]:
    cyr = len(re.findall(r"[а-яёА-ЯЁ]", text))
    lat = len(re.findall(r"[a-zA-Z]", text))
    return "ru" if cyr and cyr >= lat / 3 else "en"


def time_range(text: str, now: datetime | None = None) -> str | None:
    """'since 10:00' / 'с 10:00', 'last 2h', 'за 30 минут', 'за последний час', 'за сутки' -> '2h', '30m'."""
    now = now or utcnow()
    m = re.search(r"(?:since|from|after|с|c|после)\s+(\d{1,2})[:.](\d{2})", text, re.I)
    if m:
        start = now.replace(hour=int(m.group(1)) % 24, minute=int(m.group(2)) % 60, second=0, microsecond=0)
        if start > now:
            start -= timedelta(days=1)
        minutes = max(5, int((now - start).total_seconds() // 60))
        return f"{minutes}m"
    m = re.search(r"(\d{1,4})\s*(m|min\w*|h|hours?|hrs?|d|days?|мин\w*|ч\b|час\w*|д\b|дн\w*|сут\w*)", text, re.I)
    if m:
        n, unit = int(m.group(1)), m.group(2).lower()
        suffix = "m" if unit.startswith(("m", "мин")) else "d" if unit.startswith(("d", "д", "сут")) else "h"
        return f"{max(1, n)}{suffix}"
    if re.search(r"(?:last|past)\s+hour|(?:за\s+)?последний\s+час|за\s+час", text, re.I):
        return "1h"
    if re.search(r"(?:last|past)\s+day|today|сутки|сегодня", text, re.I):
        return "24h"
    return None


def _service(text: str, lang: str) -> str | None:
    pattern = _RU_ANALYZE if lang == "ru" else _EN_ANALYZE
    for m in pattern.finditer(text):
        svc = m.group("svc")
        if svc.lower() not in _STOP:
            return svc
        # "why is the checkout slow": skip stop words after the keyword
        rest = [w for w in _LATIN.findall(text[m.start("svc"):]) if w.lower() not in _STOP]
        if rest:
            return rest[0]
    if lang == "ru":  # a Russian sentence naming a service names it in Latin letters: "почему тормозит checkout?"
        words = [w for w in _LATIN.findall(text) if w.lower() not in _STOP]
        return words[0] if words else None
    return None


def parse(text: str, now: datetime | None = None) -> Intent:
    lang = language(text)
    rng = time_range(text, now)
    if m := _PLAN.search(text):
        return Intent(kind="plan", lang=lang, plan_id=m.group(0))
    if m := _INCIDENT.search(text):
        return Intent(kind="show", lang=lang, incident_id=m.group(0))
    for kind, pattern in _RULES:
        if kind == "decision" and pattern.search(text):
            return Intent(kind="decision", lang=lang)
    svc = _service(text, lang)
    if svc:
        return Intent(kind="analyze", lang=lang, service=svc, time_range=rng or "1h")
    for kind, pattern in _RULES[1:]:
        if pattern.search(text):
            return Intent(kind=kind, lang=lang)
    return Intent(kind="unknown", lang=lang)
