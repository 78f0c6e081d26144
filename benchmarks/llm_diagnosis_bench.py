"""LLM diagnosis benchmark: the Nezha dev and held-out days through the product's LLM mode, beside rule mode.

    PYTHONPATH=. .venv/bin/python benchmarks/llm_diagnosis_bench.py --base-url http://127.0.0.1:8811/v1 \
        [--model NAME] [--limit N] [--splits dev held-out] [--out out/llm-bench.json]
    PYTHONPATH=. .venv/bin/python benchmarks/llm_diagnosis_bench.py --smoke     # seconds; CI runs it

Opt-in, not CI (the full run needs a model: ~1 h for the 56 cases with a 1.5B model on 2 cores). Every
case of a split (Online Boutique, dev 2022-08-22 and held-out 2022-08-23 by default) is investigated
twice through `evals.suites.nezha.investigate_case`, the same path as `aiops eval nezha`: once in rule
mode, once with the provider chain built from settings pointed at `--base-url` (any OpenAI-compatible
server; `OPENAI_BASE_URL`/`OPENAI_MODEL` by default). Per case it prints the rank of the true root cause
in each mode, the LLM mode's AS@1/AS@3 hits, its LLM calls (failed ones too), prompt and completion
tokens and seconds; per split, both modes' totals side by side and whether the LLM mode's ranking is
worse than rule mode's on the same cases. `--out` is rewritten after every case, so a run stopped
early keeps what it measured.

`--smoke` needs no model: the OpenAI wire simulator of tests/sim answers (a Diagnosis that cites the
evidence it was shown, nothing usable for any other question), on the tiny synthetic Nezha layout of
tests/fake_nezha.py used as both splits; the benchmark then checks its own bookkeeping against what
the simulator served (calls, prompt and completion tokens, the model's cause reaching the report).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from langchain_core.callbacks import BaseCallbackHandler  # noqa: E402

from core.llm import LLMChain, build_llm_chain  # noqa: E402
from core.settings import Settings, get_settings  # noqa: E402
from evals.report import write_report  # noqa: E402
from evals.score import accuracy_at_k, rank_of  # noqa: E402
from evals.suites import nezha  # noqa: E402
from tools.metrics.recorded import RecordedMetricsSource  # noqa: E402

SPLITS = {"dev": "2022-08-22", "held-out": "2022-08-23"}
KS = (1, 3, 5)


# ------------------------------------------------------------------------------------ the run --
def llm_settings(base: Settings, url: str, model: str, key: str | None, timeout: float) -> Settings:
    """Settings whose provider chain is this one OpenAI-compatible server (no Ollama fallback, no cache:
    every case pays for its own answer), reading the recording (no PROMETHEUS_URL)."""
    return base.model_copy(update={"OPENAI_BASE_URL": url, "OPENAI_MODEL": model, "OPENAI_API_KEY": key,
                                   "OLLAMA_BASE_URL": None, "LLM_MODE": "auto", "LLM_TIMEOUT": timeout,
                                   "ENABLE_CACHING": False, "PROMETHEUS_URL": None})


class ModelAnswers(BaseCallbackHandler):
    """The model's own Diagnosis answers, as they come off the wire (before the product uses them)."""

    run_inline = True

    def __init__(self) -> None:
        self.diagnoses: list[dict[str, Any]] = []

    def on_llm_end(self, response: Any, **kwargs: Any) -> None:
        for generations in response.generations:
            for gen in generations:
                for call in getattr(getattr(gen, "message", None), "tool_calls", None) or []:
                    if call.get("name") == "Diagnosis":
                        self.diagnoses.append(call.get("args") or {})

    def ranking(self) -> list[str]:
        """The components of the model's last Diagnosis, by its own confidence (ties: its order)."""
        if not self.diagnoses:
            return []
        hyps = [h for h in self.diagnoses[-1].get("hypotheses") or [] if isinstance(h, dict)]

        def confidence(h: dict[str, Any]) -> float:
            try:
                return -float(h.get("confidence") or 0)
            except (TypeError, ValueError):
                return 0.0

        return nezha._dedupe([str(h.get("component", "")) for h in sorted(hyps, key=confidence)])


class DiagnosisOnly(LLMChain):
    """The same providers for the diagnosis node; every other node answers by its rules, as with no
    model (`--diagnosis-only`: planning's LLM call costs as much as the diagnosis and no AS@k)."""

    async def step(self, node: str, messages: Any, tools: Any, calls: Any, tool_choice: str | None = None) -> Any:
        return await super().step(node, messages, tools, calls, tool_choice) if node == "diagnosis" else None

    async def structured(self, node: str, messages: Any, schema: Any, calls: Any) -> Any:
        return await super().structured(node, messages, schema, calls) if node == "diagnosis" else None


def _hit(rank: int | None, k: int) -> bool:
    return rank is not None and rank <= k


def case_line(split: str, rules: dict[str, Any], llm: dict[str, Any]) -> str:
    def rank(r: int | None) -> str:
        return "-" if r is None else str(r)

    hits = " ".join("y" if _hit(llm["rank"], k) else "." for k in (1, 3))
    failed = f"({llm['llm_calls_failed']} failed)" if llm["llm_calls_failed"] else ""
    return (f"{split:8} {llm['case_id']:24} {llm['fault_type']:14} {llm['truth']:22} {rank(rules['rank']):>5}"
            f" {rank(llm['model_rank']):>5} {rank(llm['rank']):>4}  {hits:>9}  {llm['llm_calls']:>3}{failed:11}"
            f" {llm['input_tokens']:>7} {llm['output_tokens']:>6} {llm['seconds']:>7.1f}  {', '.join(llm['model_ranking'][:3])}")


CASE_HEAD = (f"{'split':8} {'case':24} {'fault':14} {'truth':22} {'rules':>5} {'model':>5} {'llm':>4}  {'AS@1 AS@3':>9}"
             f"  {'calls':14} {'prompt':>7} {'compl':>6} {'s':>7}  the model's own top-3")


def totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    ranks = [r["rank"] for r in rows]
    n = len(rows) or 1
    return {"cases": len(rows), **{f"as@{k}": round(accuracy_at_k(ranks, k), 4) for k in KS},
            "llm_calls": sum(r["llm_calls"] for r in rows),
            "llm_calls_failed": sum(r["llm_calls_failed"] for r in rows),
            "input_tokens": sum(r["input_tokens"] for r in rows),
            "output_tokens": sum(r["output_tokens"] for r in rows),
            "seconds": round(sum(r["seconds"] for r in rows), 1),
            "seconds_per_case": round(sum(r["seconds"] for r in rows) / n, 1)}


def own_totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """AS@k of the model's own answer (its Diagnosis in its confidence order; no answer is a miss)."""
    ranks = [r["model_rank"] for r in rows]
    return {"cases": len(rows), "answered": sum(1 for r in rows if r["model_answered"]),
            **{f"as@{k}": round(accuracy_at_k(ranks, k), 4) for k in KS}}


def worse(llm: dict[str, Any], rules: dict[str, Any]) -> list[str]:
    """The AS@k on which the LLM mode ranks below rule mode on the same cases."""
    return [f"AS@{k}" for k in KS if llm[f"as@{k}"] < rules[f"as@{k}"]]


def totals_table(result: dict[str, Any]) -> str:
    lines = [f"{'split':8} {'date':10} {'mode':36} {'cases':>5} {'AS@1':>6} {'AS@3':>6} {'AS@5':>6} {'calls':>6}"
             f" {'failed':>6} {'prompt tok':>10} {'compl tok':>9} {'s/case':>7}  worse than rules"]
    for split, s in result["splits"].items():
        for mode in ("rules", "llm"):
            t = s[mode]
            verdict = "" if mode == "rules" else (", ".join(worse(t, s["rules"])) or "no")
            name = "rules" if mode == "rules" else f"llm mode ({result['model']})"
            lines.append(f"{split:8} {s['date']:10} {name[:36]:36} {t['cases']:>5} {t['as@1']:>6.3f} {t['as@3']:>6.3f}"
                         f" {t['as@5']:>6.3f} {t['llm_calls']:>6} {t['llm_calls_failed']:>6} {t['input_tokens']:>10}"
                         f" {t['output_tokens']:>9} {t['seconds_per_case']:>7.1f}  {verdict}")
        own = s["model_own"]
        lines.append(f"{split:8} {s['date']:10} {'  the model alone':36} {own['cases']:>5} {own['as@1']:>6.3f}"
                     f" {own['as@3']:>6.3f} {own['as@5']:>6.3f}  (its own Diagnosis answer, {own['answered']} of"
                     f" {own['cases']} cases answered; {', '.join(worse(own, s['rules'])) or 'not'} worse than rules)")
    return "\n".join(lines)


@dataclass
class Split:
    name: str
    cases: list[nezha.NezhaCase]
    recording: RecordedMetricsSource
    call_graph: dict[str, list[str]] | None
    entry: dict[str, Any]


def load_split(name: str, date: str, data: Path, system: str, skip: int, limit: int | None) -> Split:
    cases = nezha.load_cases(data, system, date)
    if not cases:
        raise ValueError(f"no {system} cases on {date} in {data / 'nezha-rca' / 'cases.csv'}")
    cases = cases[skip:skip + limit] if limit else cases[skip:]
    recording = RecordedMetricsSource.nezha(data, system, date)
    return Split(name, cases, recording, recording.call_graph(), {"date": date, "system": system, "per_case": []})


async def run_case(split: Split, case: nezha.NezhaCase, llm: LLMChain, answers: ModelAnswers,
                   settings: Settings) -> None:
    """One case in rule mode, then in LLM mode; the split's totals so far."""
    rules_settings = settings.model_copy(update={"LLM_MODE": "rules"})
    rules = await nezha.investigate_case(case, split.recording, split.call_graph, LLMChain([]), rules_settings)
    answers.diagnoses.clear()
    with_llm = await nezha.investigate_case(case, split.recording, split.call_graph, llm, settings)
    own = answers.ranking()
    with_llm.update(model_ranking=own, model_rank=rank_of(case.root_cause_service, own),
                    model_answered=bool(answers.diagnoses))
    entry = split.entry
    entry["per_case"].append({"rules": rules, "llm": with_llm})
    entry["rules"] = totals([c["rules"] for c in entry["per_case"]])
    entry["llm"] = totals([c["llm"] for c in entry["per_case"]])
    entry["model_own"] = own_totals([c["llm"] for c in entry["per_case"]])
    print(case_line(split.name, rules, with_llm), flush=True)


async def run(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    llm = build_llm_chain(settings)
    if args.diagnosis_only:
        llm = DiagnosisOnly(llm.providers)
    answers = ModelAnswers()
    for provider in llm.providers:  # the model's own answer, whatever the product then makes of it
        provider.chat.callbacks = [answers]
    result: dict[str, Any] = {"benchmark": "llm_diagnosis", "model": settings.OPENAI_MODEL,
                              "llm_nodes": "diagnosis only" if args.diagnosis_only else "all",
                              "base_url": settings.OPENAI_BASE_URL, "skip": args.skip, "limit": args.limit,
                              "splits": {}}
    splits = [load_split(name, args.dates[name], args.data, args.system, args.skip, args.limit)
              for name in args.splits]
    for split in splits:
        result["splits"][split.name] = split.entry
    started = time.perf_counter()
    print(CASE_HEAD, flush=True)
    # the splits take turns, case by case: a run stopped early has measured both alike
    for i in range(max(len(s.cases) for s in splits)):
        for split in splits:
            if i < len(split.cases):
                await run_case(split, split.cases[i], llm, answers, settings)
                write_report(args.out, result)
    result["seconds"] = round(time.perf_counter() - started, 1)
    write_report(args.out, result)
    return result


# ---------------------------------------------------------------------------------- the smoke --
_EVIDENCE = re.compile(r"^(ev-\d+) \[[^\]]*\] ([^:]+):", re.M)


class SmokeModel:
    """What the simulator answers: a Diagnosis citing the evidence it was shown (components in the
    order of the brief), plain text to anything else; every answer and its usage is kept to compare."""

    def __init__(self) -> None:
        self.served: list[dict[str, Any]] = []

    def __call__(self, body: dict[str, Any]) -> dict[str, Any]:
        from tests.sim.openai_server import function_call

        tools = [t["function"]["name"] for t in body.get("tools", [])]
        brief = "\n".join(str(m.get("content") or "") for m in body["messages"])
        by_component: dict[str, list[str]] = {}
        for ev, component in _EVIDENCE.findall(brief):
            by_component.setdefault(component.strip(), []).append(ev)
        if "Diagnosis" in tools and by_component:
            hyps = [{"component": c, "cause": f"smoke model: {c}", "confidence": round(0.9 - 0.2 * i, 2),
                     "evidence_ids": ids} for i, (c, ids) in enumerate(list(by_component.items())[:3])]
            message = function_call("Diagnosis", {"hypotheses": hyps, "summary": "smoke"})
        else:
            message = {"role": "assistant", "content": "no answer"}
        # the simulator's own usage arithmetic (tests/sim/openai_server.py), kept to check ours
        self.served.append({"prompt": sum(len(json.dumps(m)) for m in body.get("messages", [])) // 4,
                            "completion": len(json.dumps(message)) // 4})
        return message


@contextmanager
def smoke_setup() -> Iterator[tuple[Path, str, SmokeModel]]:
    from tests import fake_nezha
    from tests.sim.openai_server import OpenAISim, serve

    model = SmokeModel()
    with tempfile.TemporaryDirectory(prefix="aiops-llm-bench-") as tmp, serve(OpenAISim(model)) as url:
        fake_nezha.write_layout(Path(tmp))
        yield Path(tmp), url, model


def check_smoke(result: dict[str, Any], model: SmokeModel) -> list[str]:
    """What the benchmark recorded must be what the simulator served."""
    rows = [c for s in result["splits"].values() for c in s["per_case"]]
    llm_rows = [c["llm"] for c in rows]
    problems = []
    if len(result["splits"]) != 2 or not all(s["per_case"] for s in result["splits"].values()):
        problems.append(f"expected two splits with cases, got {list(result['splits'])}")
    calls = sum(r["llm_calls"] for r in llm_rows)
    if calls != len(model.served) or calls == 0:
        problems.append(f"{calls} LLM calls recorded, {len(model.served)} served")
    for key, served in (("input_tokens", "prompt"), ("output_tokens", "completion")):
        mine, theirs = sum(r[key] for r in llm_rows), sum(s[served] for s in model.served)
        if mine != theirs or mine == 0:
            problems.append(f"{key}: {mine} recorded, {theirs} served")
    if not all(r["model_answered"] and r["model_ranking"] for r in llm_rows):
        problems.append("the model's own Diagnosis answer was not captured")
    if any(c["rules"]["llm_calls"] for c in rows):
        problems.append("rule mode called a model")
    if not all(r["top_cause"].startswith("smoke model: ") for r in llm_rows):
        problems.append(f"the model's cause did not reach the report: {[r['top_cause'] for r in llm_rows]}")
    for split in result["splits"].values():
        ranks = [c["llm"]["rank"] for c in split["per_case"]]
        if split["llm"]["as@1"] != accuracy_at_k(ranks, 1):
            problems.append("AS@1 does not follow the per-case ranks")
    return problems


# ---------------------------------------------------------------------------------------- CLI --
def print_saved(path: Path) -> int:
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"error: {path}: {exc}", file=sys.stderr)
        return 2
    result["splits"] = {k: v for k, v in result["splits"].items() if v["per_case"]}
    print(CASE_HEAD)
    for split, s in result["splits"].items():
        for c in s["per_case"]:
            print(case_line(split, c["rules"], c["llm"]))
    print()
    print(totals_table(result))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL"),
                    help="OpenAI-compatible server, e.g. http://127.0.0.1:8811/v1 (default: $OPENAI_BASE_URL)")
    ap.add_argument("--model", default=None, help="model name sent to it (default: $OPENAI_MODEL)")
    ap.add_argument("--timeout", type=float, default=900.0,
                    help="LLM_TIMEOUT for this run: seconds per call (a small model on 2 cores is slow)")
    ap.add_argument("--data", type=Path, default=None, help="datasets folder (default: $DATASETS_DIR)")
    ap.add_argument("--system", default="onlineboutique")
    ap.add_argument("--dev", default=SPLITS["dev"], help="the dev day (rule mode was tuned on it)")
    ap.add_argument("--held-out", default=SPLITS["held-out"], help="the held-out day")
    ap.add_argument("--splits", nargs="+", choices=tuple(SPLITS), default=list(SPLITS))
    ap.add_argument("--limit", type=int, default=None, help="only the first N cases of each split (after --skip)")
    ap.add_argument("--skip", type=int, default=0, help="leave out the first N cases of each split")
    ap.add_argument("--diagnosis-only", action="store_true",
                    help="only the diagnosis asks the model; planning uses its rules (half the time, same AS@k)")
    ap.add_argument("--out", type=Path, default=None, help="JSON report, rewritten after every case")
    ap.add_argument("--smoke", action="store_true",
                    help="the wire simulator and the synthetic layout instead of a model and the data (seconds)")
    ap.add_argument("--table", type=Path, default=None,
                    help="print the tables of a saved --out report (e.g. of a run stopped early) and exit")
    args = ap.parse_args()
    if args.table is not None:
        return print_saved(args.table)
    base = get_settings()
    if args.smoke:
        with smoke_setup() as (data, url, model):
            args.data, args.splits, args.skip, args.limit = data, list(SPLITS), 0, None
            args.dates = {"dev": "2022-08-22", "held-out": "2022-08-22"}  # the synthetic day, as both splits
            settings = llm_settings(base, url, "smoke-sim", "not-needed", 30.0)
            result = asyncio.run(run(args, settings))
            problems = check_smoke(result, model)
        print()
        print(totals_table(result))
        for p in problems:
            print(f"smoke: {p}", file=sys.stderr)
        return 1 if problems else 0
    if not args.base_url:
        print("error: no model: pass --base-url or set OPENAI_BASE_URL (or run --smoke)", file=sys.stderr)
        return 2
    args.data = args.data if args.data is not None else Path(base.DATASETS_DIR)
    args.dates = {"dev": args.dev, "held-out": args.held_out}
    settings = llm_settings(base, args.base_url, args.model or base.OPENAI_MODEL, base.OPENAI_API_KEY or None,
                            args.timeout)
    try:
        result = asyncio.run(run(args, settings))
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print()
    print(totals_table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
