"""The PromQL subset non-Prometheus backends answer: an instant-vector selector with label matchers."""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

_SELECTOR = re.compile(r"^\s*(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)?\s*(?:\{(?P<matchers>.*)\})?\s*$")
_MATCHER = re.compile(r'\s*(?P<label>[a-zA-Z_][a-zA-Z0-9_]*)\s*(?P<op>=~|!~|!=|=)\s*"(?P<value>(?:[^"\\]|\\.)*)"\s*,?')


class Selector(BaseModel):
    """A parsed PromQL instant-vector selector (the subset non-Prometheus backends support)."""

    name: str | None = None
    matchers: list[tuple[str, str, str]] = Field(default_factory=list)

    @classmethod
    def parse(cls, query: str) -> Selector:
        m = _SELECTOR.match(query)
        if not m:
            raise ValueError(f"unsupported query for a recorded source (only selectors): {query!r}")
        matchers: list[tuple[str, str, str]] = []
        rest = m.group("matchers") or ""
        pos = 0
        while pos < len(rest.strip()):
            mm = _MATCHER.match(rest, pos)
            if not mm:
                raise ValueError(f"cannot parse label matchers in {query!r}")
            matchers.append((mm.group("label"), mm.group("op"), mm.group("value")))
            pos = mm.end()
        if not m.group("name") and not matchers:
            raise ValueError(f"empty selector: {query!r}")
        return cls(name=m.group("name"), matchers=matchers)

    def matches(self, metric: str, labels: dict[str, str]) -> bool:
        if self.name and self.name != metric:
            return False
        for label, op, value in self.matchers:
            actual = metric if label == "__name__" else labels.get(label, "")
            if op == "=" and actual != value:
                return False
            if op == "!=" and actual == value:
                return False
            if op == "=~" and not re.fullmatch(value, actual):
                return False
            if op == "!~" and re.fullmatch(value, actual):
                return False
        return True
