"""`aiops memory ...`: ingest runbooks and postmortems into Milvus, show counts, try a search.

The lead's CLI dispatches `aiops memory <sub> ...` to `cli(argv)`. Bad input is one line on stderr
and exit code 2; an unreachable Milvus or a broken model is one line and exit code 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from core.settings import SettingsError, get_settings
from memory.embeddings import get_embedder
from memory.incidents import IncidentMemory
from memory.ingest import IngestError, ingest_postmortems, ingest_runbooks


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aiops memory", description="Incident and runbook memory (Milvus).")
    p.add_argument("--uri", help="Milvus URI or milvus-lite file (default: MILVUS_URI or $AIOPS_DATA_DIR/milvus.db)")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("ingest-runbooks", help="prometheus-operator runbooks and awesome-prometheus-alerts rules")
    r.add_argument("dir", type=Path)
    m = sub.add_parser("ingest-postmortems", help="icco/postmortems markdown as past incidents")
    m.add_argument("dir", type=Path)
    sub.add_parser("stats", help="rows per collection")
    s = sub.add_parser("search", help="search runbooks (and similar incidents) for a text")
    s.add_argument("text")
    s.add_argument("--alertname")
    s.add_argument("--service")
    s.add_argument("--limit", type=int, default=3)
    return p


def _memory(uri: str | None) -> IncidentMemory:
    settings = get_settings()
    if uri:
        return IncidentMemory(uri, settings.MILVUS_TOKEN, get_embedder(settings))
    return IncidentMemory.from_settings(settings)


def cli(argv: list[str]) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its one-line usage error
        return 0 if exc.code == 0 else 2

    if args.command in ("ingest-runbooks", "ingest-postmortems") and not args.dir.is_dir():
        print(f"aiops memory {args.command}: {args.dir}: not a directory", file=sys.stderr)
        return 2
    try:
        memory = _memory(args.uri)
    except SettingsError as exc:
        print(f"aiops memory: {exc}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    try:
        with memory:
            if args.command == "ingest-runbooks":
                out = ingest_runbooks(memory, args.dir)
                print(f"runbooks: {out['prometheus-operator']} prometheus-operator + "
                      f"{out['awesome-prometheus-alerts']} awesome-prometheus-alerts, {out['written']} upserted, "
                      f"{out['total']} in store ({time.perf_counter() - started:.1f}s)")
            elif args.command == "ingest-postmortems":
                out = ingest_postmortems(memory, args.dir)
                print(f"incidents: {out['postmortems']} postmortems, {out['written']} upserted, "
                      f"{out['total']} in store ({time.perf_counter() - started:.1f}s)")
            elif args.command == "stats":
                counts = memory.counts()
                print(json.dumps({"uri": memory.uri, **counts}))
            elif args.command == "search":
                for rm in memory.search_runbooks(args.text, alertname=args.alertname, limit=args.limit):
                    print(f"runbook  {rm.score:.3f}  {rm.doc.alertname:<40} {rm.doc.source}")
                for im in memory.similar_incidents(args.text, service=args.service, limit=args.limit):
                    print(f"incident {im.score:.3f}  {im.record.id:<40} {im.record.symptoms[:80]}")
    except IngestError as exc:
        print(f"aiops memory {args.command}: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - one line, not a traceback, for an operator
        print(f"aiops memory {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(cli(sys.argv[1:]))
