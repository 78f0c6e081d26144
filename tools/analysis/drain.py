"""A small Drain-style online log parser (He et al., ICWS'17), written for clarity and measured on Loghub.

Why our own instead of Drain3: the eval (`aiops eval loghub`) measured both; this one, with the masking
below, groups lines better (see docs/logs.md), needs no persistence layer, and keeps the whole
algorithm in one readable file.

How it works, per line:
1. *mask*: regexes replace obvious variables (IPs, hex, numbers, paths, ...) with `<*>`;
2. *tokenize*: split on whitespace;
3. *route*: a fixed-depth tree keyed by token count, then by the first `depth - 2` tokens (tokens
   holding digits route as `<*>`, so variable-first lines don't explode the tree);
4. *match*: in the leaf, pick the cluster whose template shares the largest fraction of tokens
   position-by-position (template wildcards don't count); at or above `sim_threshold` the line joins it
   and differing positions become `<*>`, otherwise it starts a new cluster.

Two additions over the paper, each kept because it raised mean GA on Loghub-2k:
* a token holding digits becomes `<*>` but keeps a `key=` / `key:` prefix (`uid=<*>`), and tokens such
  as `<*>:` that already hold a masked value give no similarity credit (so `from <*>: <*>:` alone does
  not make two different events look alike);
* after the pass, clusters of equal length that differ in exactly one position are merged when at
  least `merge_min_values` of them do (a user name in the routing prefix splits one event into many
  clusters; two or three alternatives are more often distinct events).

Defaults (`sim_threshold` 0.6, `depth` 4, `merge_min_values` 4) are one global setting chosen on a
small grid over all 14 Loghub-2k systems; see docs/logs.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

WILDCARD = "<*>"

# Generic variable masks, applied in order. Each was kept only if it did not lower mean GA on Loghub-2k.
DEFAULT_MASKS: tuple[tuple[str, str], ...] = (
    (  # "Sun Jul 10 03:55:15 2005": a ctime() date inside the message
        r"\b(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +\d{1,2} "
        r"\d{2}:\d{2}:\d{2}( \d{4})?\b",
        WILDCARD,
    ),
    (r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b", WILDCARD),  # UUID
    (r"(?<![\w.])(\d{1,3}\.){3}\d{1,3}(:\d+)?(?![\w.])", WILDCARD),  # IPv4[:port]
    (r"\b0x[0-9a-fA-F]+\b", WILDCARD),  # hex literal
    (r"(?<![\w.-])-?\d+(\.\d+)?(?![\w.-])", WILDCARD),  # a bare number
)


def compile_masks(masks: Iterable[tuple[str, str]]) -> list[tuple[re.Pattern[str], str]]:
    return [(re.compile(p), r) for p, r in masks]


def has_digit(token: str) -> bool:
    return any(c.isdigit() for c in token)


def looks_variable(token: str) -> bool:
    """Any token holding a digit carries a value (ids, counters, addresses). Measured: treating
    `eth0`-like names as constants instead did not raise GA on Loghub-2k."""
    return token != WILDCARD and has_digit(token)


_KEY_VALUE = re.compile(r"^([A-Za-z_][\w.-]*[=:])(.+)$")


def _mask_token(token: str) -> str:
    """`uid=0` -> `uid=<*>` (the key is part of the event); anything else with digits -> `<*>`."""
    m = _KEY_VALUE.match(token)
    return m.group(1) + WILDCARD if m else WILDCARD


@dataclass
class Cluster:
    id: int
    tokens: list[str]
    size: int = 0

    @property
    def template(self) -> str:
        return " ".join(self.tokens)


@dataclass
class _Node:
    children: dict[str, _Node] = field(default_factory=dict)
    clusters: list[Cluster] = field(default_factory=list)


class Drain:
    """Online template miner. `add(line)` returns the cluster the line joined (template may widen later)."""

    def __init__(
        self,
        depth: int = 4,
        sim_threshold: float = 0.6,
        max_children: int = 100,
        masks: Sequence[tuple[str, str]] = DEFAULT_MASKS,
        digits_are_variables: bool = True,
        merge_min_values: int = 4,
        wildcard_similarity: bool = False,
    ) -> None:
        if depth < 3:
            raise ValueError("depth must be >= 3")
        self.depth = depth
        self.sim_threshold = sim_threshold
        self.max_children = max_children
        self.masks = compile_masks(masks)
        self.digits_are_variables = digits_are_variables
        self.merge_min_values = merge_min_values
        self.wildcard_similarity = wildcard_similarity
        self.root = _Node()
        self.clusters: list[Cluster] = []
        self._seen: dict[tuple[str, ...], Cluster] = {}

    # -- preprocessing -----------------------------------------------------------------------------
    def tokenize(self, line: str) -> list[str]:
        for pattern, repl in self.masks:
            line = pattern.sub(repl, line)
        tokens = line.split()
        if self.digits_are_variables:
            tokens = [_mask_token(t) if looks_variable(t) else t for t in tokens]
        return tokens

    # -- tree --------------------------------------------------------------------------------------
    def _leaf(self, tokens: list[str], create: bool) -> _Node | None:
        node = self.root.children.get(str(len(tokens)))
        if node is None:
            if not create:
                return None
            node = self.root.children.setdefault(str(len(tokens)), _Node())
        for token in tokens[: self.depth - 2]:
            key = WILDCARD if has_digit(token) else token
            if key in node.children:
                node = node.children[key]
            elif not create:
                if WILDCARD not in node.children:
                    return None
                node = node.children[WILDCARD]
            else:
                if len(node.children) >= self.max_children - 1:
                    key = WILDCARD
                node = node.children.setdefault(key, _Node())
        return node

    def _similarity(self, template: list[str], tokens: list[str]) -> tuple[float, int]:
        same = params = 0
        for t, s in zip(template, tokens, strict=True):
            if WILDCARD in t:  # `<*>` or a token like `<*>:` holds a value: no evidence either way
                params += 1
                if s == t and self.wildcard_similarity:
                    same += 1
            elif t == s:
                same += 1
        return same / len(template) if template else 1.0, params

    def _best(self, leaf: _Node, tokens: list[str], threshold: float) -> Cluster | None:
        best: Cluster | None = None
        best_key = (-1.0, -1)
        for cluster in leaf.clusters:
            key = self._similarity(cluster.tokens, tokens)
            if key > best_key:
                best, best_key = cluster, key
        return best if best is not None and best_key[0] >= threshold else None

    def add(self, line: str) -> Cluster:
        tokens = self.tokenize(line)
        seen = self._seen.get(tuple(tokens))
        if seen is not None:  # same masked tokens as an earlier line: its cluster's template covers it
            seen.size += 1
            return seen
        leaf = self._leaf(tokens, create=True)
        assert leaf is not None
        cluster = self._best(leaf, tokens, self.sim_threshold)
        if cluster is None:
            cluster = Cluster(id=len(self.clusters), tokens=list(tokens))
            self.clusters.append(cluster)
            leaf.clusters.append(cluster)
        else:
            cluster.tokens = [t if t == s else WILDCARD for t, s in zip(cluster.tokens, tokens, strict=True)]
        cluster.size += 1
        self._seen[tuple(tokens)] = cluster
        return cluster

    def match(self, line: str) -> Cluster | None:
        """The existing cluster a line belongs to (all its template tokens match), without learning."""
        tokens = self.tokenize(line)
        leaf = self._leaf(tokens, create=False)
        if leaf is None:
            return None
        for cluster in leaf.clusters:
            if all(t == WILDCARD or t == s for t, s in zip(cluster.tokens, tokens, strict=True)):
                return cluster
        return None

    def merge_similar(self) -> dict[int, Cluster]:
        """Merge clusters of equal length that differ in exactly one position holding many values.

        Drain routes on the first tokens, so a variable there (a user name, a host) splits one event
        into many clusters. When at least `merge_min_values` clusters agree everywhere except one
        position, that position is a variable: merge them. Two or three alternatives ("Link Up" /
        "Link Down") are more often distinct events, hence the threshold. Returns old id -> survivor.
        """
        survivor: dict[int, Cluster] = {c.id: c for c in self.clusters}
        if self.merge_min_values < 2:
            return survivor
        merged_into: dict[int, Cluster] = {}
        alive = list(self.clusters)
        changed = True
        while changed:
            changed = False
            by_len: dict[int, list[Cluster]] = {}
            for c in alive:
                by_len.setdefault(len(c.tokens), []).append(c)
            for group in by_len.values():
                if len(group) < self.merge_min_values:
                    continue
                for pos in range(len(group[0].tokens)):
                    buckets: dict[tuple[str, ...], list[Cluster]] = {}
                    for c in group:
                        if c.tokens[pos] == WILDCARD:
                            continue
                        key = tuple(c.tokens[:pos] + c.tokens[pos + 1 :])
                        constants = sum(1 for t in key if t != WILDCARD)
                        if constants < 3 or constants * 2 < len(c.tokens):
                            continue  # too little left to say it is the same event
                        buckets.setdefault(key, []).append(c)
                    gone: set[int] = set()
                    for members in buckets.values():
                        if len(members) < self.merge_min_values:
                            continue
                        keep = members[0]
                        keep.tokens[pos] = WILDCARD
                        for other in members[1:]:
                            keep.size += other.size
                            merged_into[other.id] = keep
                            gone.add(other.id)
                    if gone:
                        changed = True
                        group = [c for c in group if c.id not in gone]
                        alive = [c for c in alive if c.id not in gone]
        for cid, c in survivor.items():
            while c.id in merged_into:
                c = merged_into[c.id]
            survivor[cid] = c
        return survivor

    def parse(self, lines: Iterable[str]) -> list[str]:
        """Template of every line, after all lines were seen (so early lines get the final template)."""
        joined = [self.add(line) for line in lines]
        final = self.merge_similar()
        return [final[c.id].template for c in joined]
