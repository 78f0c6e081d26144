"""Turn a flood of log lines into a short, ranked list of templates with counts.

The diagnosis agent never sees raw floods: it sees `TemplateStat`s, most interesting first (templates
new since the baseline window, templates whose rate jumped, error-level templates), each with one
redacted example line. Mining is the Drain-style parser in `tools.analysis.drain` (measured against
Drain3 on Loghub-2k; see docs/logs.md).

Line-level anomaly detection (`line_anomalies`) is a transparent rule, not a model: a line is anomalous
when its level is severe (FATAL / FAILURE / CRITICAL / ALERT / EMERGENCY / PANIC) and it is not a
diagnostic *dump* line (register/address/status values printed after a fault: `name....value`,
`xxx register: 0x1f`). Measured on Loghub BGL by `aiops eval loghub`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel, Field

from tools.analysis.drain import DEFAULT_MASKS, Drain
from tools.analysis.redact import redact
from tools.log_types import LogRecord

SPIKE_RATIO = 3.0  # rate in the window / rate in the baseline at or above which a template "spikes"
MIN_SPIKE_COUNT = 3  # fewer lines than this in the window never count as a spike

ERROR_LEVELS = frozenset({"error", "err", "fatal", "failure", "critical", "crit", "alert", "emerg",
                          "emergency", "panic", "severe"})
SEVERE_LEVELS = frozenset({"fatal", "failure", "critical", "crit", "alert", "emerg", "emergency", "panic"})

_LEVEL_IN_TEXT = re.compile(
    r"\b(FATAL|CRITICAL|CRIT|EMERG|ALERT|PANIC|SEVERE|ERROR|ERR|WARNING|WARN|NOTICE|INFO|DEBUG|TRACE)\b"
)
_DUMP_LINE = re.compile(
    r"\.{3,}"  # "machine check enable..............0"
    r"|^[\w .()/+-]*\b(register|registers|address|state|status|mask)\b[^:]*:\s*(0x)?[0-9a-fA-F]*\s*$"
    r"|^Node card status"
    r"|^(lr|r\d+|cr|xer|ctr|srr\d|msr|esr|dear):",
    re.I,
)


class TemplateStat(BaseModel):
    """One log template seen in the analysed window, compared with the baseline window."""

    template: str
    count: int
    baseline_count: int = 0
    example: str = ""
    is_new: bool = False
    spike_ratio: float | None = None  # None: no baseline given, or the template is new
    levels: dict[str, int] = Field(default_factory=dict)

    @property
    def is_spike(self) -> bool:
        return self.spike_ratio is not None and self.spike_ratio >= SPIKE_RATIO and self.count >= MIN_SPIKE_COUNT

    @property
    def error_count(self) -> int:
        return sum(n for level, n in self.levels.items() if level in ERROR_LEVELS)


def record_level(record: LogRecord) -> str:
    """The record's level, lower-cased; read from the message text when the source gave none."""
    if record.level:
        return record.level.strip().lower()
    m = _LEVEL_IN_TEXT.search(record.message[:200])
    return m.group(1).lower() if m else ""


def mine_templates(
    messages: Sequence[str],
    masks: Sequence[tuple[str, str]] = DEFAULT_MASKS,
    sim_threshold: float = 0.6,
    depth: int = 4,
    merge_min_values: int = 4,
) -> list[str]:
    """The template of each message (same order), as a fresh parser sees the whole list."""
    drain = Drain(depth=depth, sim_threshold=sim_threshold, masks=masks, merge_min_values=merge_min_values)
    return drain.parse(messages)


def _span_seconds(records: Sequence[LogRecord]) -> float:
    if len(records) < 2:
        return 1.0
    stamps: list[datetime] = [r.timestamp for r in records]
    return max((max(stamps) - min(stamps)).total_seconds(), 1.0)


def _interest(stat: TemplateStat) -> tuple[bool, bool, bool, float, int]:
    changed = stat.is_new or stat.is_spike
    return (changed, stat.error_count > 0, stat.is_new, stat.spike_ratio or 0.0, stat.count)


def summarize_logs(
    records: list[LogRecord],
    baseline: list[LogRecord] | None = None,
    top: int = 20,
    *,
    window_seconds: float | None = None,
    baseline_seconds: float | None = None,
) -> list[TemplateStat]:
    """Templates of `records` with counts, compared with `baseline`, most interesting first.

    Rates are per second of each window, so a 5-minute window compares fairly with an hour of
    baseline. Pass the queried window lengths when known; otherwise each window's span is taken from
    its first to last record. Templates and examples are redacted.
    """
    base = list(baseline or [])
    templates = mine_templates([r.message for r in base] + [r.message for r in records])
    base_t, win_t = templates[: len(base)], templates[len(base) :]
    counts = Counter(win_t)
    base_counts = Counter(base_t)
    examples: dict[str, str] = {}
    levels: dict[str, Counter[str]] = {}
    for t, r in zip(win_t, records, strict=True):
        examples.setdefault(t, r.message)
        lvl = record_level(r)
        if lvl:
            levels.setdefault(t, Counter())[lvl] += 1
    win_span = window_seconds or _span_seconds(records)
    base_span = baseline_seconds or _span_seconds(base)
    stats = []
    for t, n in counts.items():
        bn = base_counts.get(t, 0)
        is_new = baseline is not None and bn == 0
        ratio = None
        if baseline is not None and bn > 0:
            ratio = round((n / win_span) / (bn / base_span), 3)
        stats.append(
            TemplateStat(
                template=redact(t), count=n, baseline_count=bn, example=redact(examples[t][:500]),
                is_new=is_new, spike_ratio=ratio, levels=dict(levels.get(t, {})),
            )
        )
    stats.sort(key=_interest, reverse=True)
    return stats[:top]


def is_dump_line(message: str) -> bool:
    return bool(_DUMP_LINE.search(message.strip()))


def line_anomalies(levels: Sequence[str], messages: Sequence[str]) -> list[bool]:
    """Rule-based line-level anomaly flags (see module docstring). Unsupervised: uses no labels."""
    return [
        lvl.strip().lower() in SEVERE_LEVELS and not is_dump_line(msg)
        for lvl, msg in zip(levels, messages, strict=True)
    ]
