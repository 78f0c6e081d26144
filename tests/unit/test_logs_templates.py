"""Template mining, baseline comparison (new / spiking templates) and line-level anomaly flags."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tools.analysis.drain import Drain
from tools.analysis.log_templates import line_anomalies, mine_templates, summarize_logs
from tools.log_types import LogRecord

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_variables_collapse_into_one_template() -> None:
    lines = [
        "Failed password for root from 10.0.0.1 port 4022 ssh2",
        "Failed password for root from 10.0.0.7 port 51000 ssh2",
        "Accepted publickey for deploy from 10.0.0.9 port 22 ssh2",
        "Connection closed by 10.0.0.3 [preauth]",
        "Connection closed by 192.168.1.20 [preauth]",
    ]
    t = mine_templates(lines)
    assert t[0] == t[1] == "Failed password for root from <*> port <*> <*>"
    assert t[3] == t[4] == "Connection closed by <*> [preauth]"
    assert len({t[0], t[2], t[3]}) == 3


def test_key_is_kept_when_a_value_is_masked() -> None:
    drain = Drain()
    assert drain.tokenize("user=u42 ok") == ["user=<*>", "ok"]
    assert drain.tokenize("session opened by (uid=0) pid=1234") == ["session", "opened", "by", "(uid=<*>)", "pid=<*>"]


def test_many_values_in_the_routing_prefix_merge_but_few_do_not() -> None:
    users = ["alice", "bob", "carol", "dave", "erin"]
    lines = [f"Invalid user {u} from 10.0.0.{i}" for i, u in enumerate(users)]
    lines += ["Link state Up on port eth", "Link state Down on port eth"]
    t = mine_templates(lines, sim_threshold=0.9, depth=5)
    assert len(set(t[:5])) == 1 and t[0] == "Invalid user <*> from <*>"
    assert t[5] != t[6]  # two alternatives stay two events


def _records(start: datetime, seconds: int, every: float, message: str, level: str = "info") -> list[LogRecord]:
    n = int(seconds / every)
    return [LogRecord(timestamp=start + timedelta(seconds=i * every), message=message.format(i=i), level=level)
            for i in range(n)]


def test_summary_flags_new_and_spiking_templates_and_redacts() -> None:
    base_start, win_start = T0, T0 + timedelta(minutes=60)
    baseline = _records(base_start, 3600, 60, "GET /health 200 in {i} ms")  # 1 per minute
    baseline += _records(base_start, 3600, 30, "cache refreshed {i} entries")  # 2 per minute
    window = _records(win_start, 600, 12, "GET /health 200 in {i} ms")  # 5 per minute: x5
    window += _records(win_start, 600, 30, "cache refreshed {i} entries")  # unchanged rate
    window += _records(win_start, 600, 100, "db connect failed for user=app password=hunter{i}", "error")
    stats = summarize_logs(window, baseline, top=10)
    by = {s.template: s for s in stats}
    first = stats[0]
    assert first.is_new and first.levels == {"error": 6} and first.baseline_count == 0
    assert "hunter" not in first.example and "hunter" not in first.template
    health = by["GET /health <*> in <*> ms"]
    assert health.spike_ratio is not None and 4.0 < health.spike_ratio < 6.5 and health.is_spike
    cache = by["cache refreshed <*> entries"]
    assert cache.spike_ratio is not None and 0.7 < cache.spike_ratio < 1.4 and not cache.is_spike
    assert [s.template for s in stats][-1] == cache.template  # steady templates rank last


def test_summary_without_baseline_counts_only() -> None:
    window = _records(T0, 60, 10, "worker {i} started")
    stats = summarize_logs(window)
    assert len(stats) == 1 and stats[0].count == 6 and not stats[0].is_new and stats[0].spike_ratio is None


def test_level_is_read_from_the_message_when_missing() -> None:
    rec = LogRecord(timestamp=T0, message="2024-05-01 ERROR [main] boom")
    assert summarize_logs([rec])[0].levels == {"error": 1}


def test_line_anomaly_rule() -> None:
    levels = ["FATAL", "FATAL", "FATAL", "INFO", "ERROR", "FAILURE"]
    messages = [
        "data TLB error interrupt",
        "machine check enable..............0",
        "instruction address: 0x00004ed8",
        "generating core.1234",
        "MMCS detected error",
        "Lustre mount FAILED : bglio11 : block_id : location",
    ]
    assert line_anomalies(levels, messages) == [True, False, False, False, False, True]
