#!/usr/bin/env python3
"""Compare TLC's state set with the Rust checker's, state for state.

    compare.py TLC_DUMP RUST_DUMP

TLC_DUMP is what `tlc2.TLC -dump FILE` writes (FILE.dump: "State N:" blocks of
`/\\ var = value` lines, values as TLA+ expressions). RUST_DUMP is what
`model-check --symmetry off --dump FILE` writes: one JSON object per line with the
spec's variables (see model-check/src/dump.rs). Both are normalised to one canonical
line per state (sorted-key compact JSON):

    state, view, view_number, believes_primary, term, heartbeat_received, detected
        lists indexed by node (n1 first); sets as ascending lists of node numbers
    partitioned     ascending list of [a, b] pairs
    term_counter, view_counter, epoch_counter
    placements      ascending list of [actor, node, epoch]
    queue           ascending list of [actor, from, reason]

and the two sets are compared. Exit status 0 when they are equal; 1 when they differ
(the first state of each side, in that side's breadth-first order, that the other side
lacks is printed, with the nearest state of the other side and the variables where they
differ, and, from RUST_DUMP.paths when model-check wrote it, the Rust checker's
shortest path to each Rust state shown); 2 for unreadable input. Python 3 standard library only.
"""

from __future__ import annotations

import functools
import json
import re
import sys

VARIABLES = (
    "state",
    "view",
    "view_number",
    "believes_primary",
    "term",
    "heartbeat_received",
    "partitioned",
    "term_counter",
    "view_counter",
    "detected",
    "placements",
    "queue",
    "epoch_counter",
)


SORTED_VARIABLES = sorted(VARIABLES)


class ParseError(Exception):
    pass


# ---------------------------------------------------------------------------
# TLA+ values as TLC prints them.

TOKEN = re.compile(
    r"""\s*(?:
      (?P<num>-?\d+)
    | (?P<str>"(?:[^"\\]|\\.)*")
    | (?P<sym><<|>>|\|->|:>|@@|[{}()\[\],])
    | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)


def tokens(text: str) -> list[tuple[str, str]]:
    out = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ParseError(f"cannot read TLA+ value at {text[pos:pos + 40]!r}")
        pos = m.end()
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
    return out


class Fn:
    """A TLA+ function (also a tuple, whose domain is 1..n): a dict with a tag."""

    def __init__(self, pairs):
        self.map = dict(pairs)


class Parser:
    def __init__(self, text: str):
        self.toks = tokens(text)
        self.i = 0

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else (None, None)

    def take(self, value=None):
        tok = self.peek()
        if tok[0] is None or (value is not None and tok[1] != value):
            raise ParseError(f"expected {value!r}, found {tok[1]!r}")
        self.i += 1
        return tok

    def done(self):
        if self.i != len(self.toks):
            raise ParseError(f"trailing input at token {self.toks[self.i][1]!r}")

    def items(self, close):
        out = []
        if self.peek()[1] == close:
            self.take(close)
            return out
        while True:
            out.append(self.value())
            if self.peek()[1] == ",":
                self.take(",")
                continue
            self.take(close)
            return out

    def value(self):
        kind, text = self.peek()
        if kind == "num":
            self.take()
            return int(text)
        if kind == "str":
            self.take()
            return json.loads(text)
        if kind == "word":
            self.take()
            if text == "TRUE":
                return True
            if text == "FALSE":
                return False
            raise ParseError(f"unexpected name {text!r}")
        if text == "{":
            self.take()
            return frozenset(self._hashable(v) for v in self.items("}"))
        if text == "<<":
            self.take()
            return Fn(enumerate(self.items(">>"), start=1))
        if text == "[":
            self.take()
            record = {}
            if self.peek()[1] != "]":
                while True:
                    field = self.take()[1]
                    self.take("|->")
                    record[field] = self.value()
                    if self.peek()[1] == ",":
                        self.take(",")
                        continue
                    break
            self.take("]")
            return record
        if text == "(":
            # (k1 :> v1 @@ k2 :> v2 ...): a function with an explicit domain.
            self.take()
            pairs = []
            while True:
                k = self.value()
                self.take(":>")
                pairs.append((self._hashable(k), self.value()))
                if self.peek()[1] == "@@":
                    self.take("@@")
                    continue
                break
            self.take(")")
            return Fn(pairs)
        raise ParseError(f"unexpected token {text!r}")

    @staticmethod
    def _hashable(v):
        if isinstance(v, Fn):
            return tuple(v.map[k] for k in sorted(v.map))
        return v


def parse_value(text: str):
    p = Parser(text)
    v = p.value()
    p.done()
    return v


# ---------------------------------------------------------------------------
# Canonical lines.


def canonical(obj: dict) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def per_node(f: Fn, convert=lambda v: v) -> list:
    if not isinstance(f, Fn):
        raise ParseError(f"expected a function of the nodes, got {f!r}")
    keys = sorted(f.map)
    if keys != list(range(1, len(keys) + 1)):
        raise ParseError(f"nodes are not 1..n: {keys}")
    return [convert(f.map[k]) for k in keys]


def node_set(s) -> list:
    if not isinstance(s, frozenset):
        raise ParseError(f"expected a set, got {s!r}")
    return sorted(s)


def placements_of(f) -> list:
    if not isinstance(f, Fn):
        raise ParseError(f"expected a function of the actors, got {f!r}")
    return sorted([a, p["node"], p["epoch"]] for a, p in f.map.items())


def queue_of(f) -> list:
    if not isinstance(f, Fn):
        raise ParseError(f"expected a function of the actors, got {f!r}")
    return sorted([a, e["from"], e["reason"]] for a, e in f.map.items())


def pairs_of(s) -> list:
    if not isinstance(s, frozenset):
        raise ParseError(f"expected a set of pairs, got {s!r}")
    return sorted([a, b] for (a, b) in s)


def scalar(v):
    if not isinstance(v, int):
        raise ParseError(f"expected a natural, got {v!r}")
    return v


# How each variable's TLA+ value becomes its canonical JSON value.
CONVERT = {
    "state": per_node,
    "view": lambda f: per_node(f, node_set),
    "view_number": per_node,
    "believes_primary": per_node,
    "term": per_node,
    "heartbeat_received": per_node,
    "detected": lambda f: per_node(f, node_set),
    "partitioned": pairs_of,
    "term_counter": scalar,
    "view_counter": scalar,
    "epoch_counter": scalar,
    "placements": placements_of,
    "queue": queue_of,
}


@functools.lru_cache(maxsize=1 << 16)
def convert(name: str, text: str) -> str:
    """The canonical JSON text of variable `name` whose TLA+ value is `text` (values repeat
    across states, so this is cached)."""
    return json.dumps(CONVERT[name](parse_value(text)), separators=(",", ":"))


def tlc_canonical(values: dict) -> str:
    missing = set(VARIABLES) - set(values)
    if missing:
        raise ParseError(f"state lacks {sorted(missing)}")
    # Keys in sorted order, values already canonical: the same text as canonical(obj).
    return "{" + ",".join(
        f'"{name}":{convert(name, values[name])}' for name in SORTED_VARIABLES
    ) + "}"


def read_tlc(path: str) -> list[str]:
    """The canonical lines of TLC's dump, in its order."""
    lines = []
    values: dict[str, str] | None = None
    current: str | None = None

    def finish():
        if values is not None:
            lines.append(tlc_canonical(values))

    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.rstrip("\n")
            if line.startswith("/\\ "):
                name, sep, value = line[3:].partition(" = ")
                if not sep or values is None:
                    raise ParseError(f"unexpected line {line!r}")
                current = name
                values[name] = value
            elif line.startswith("State ") and line.endswith(":"):
                finish()
                values, current = {}, None
            elif line.strip() == "":
                current = None
            elif current is not None and values is not None:
                values[current] += " " + line.strip()  # a long value continues
            else:
                raise ParseError(f"unexpected line {line!r}")
    finish()
    return lines


def read_rust(path: str) -> list[str]:
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                obj = json.loads(line)
                if set(obj) != set(VARIABLES):
                    raise ParseError(f"Rust line has keys {sorted(obj)}")
                out.append(canonical(obj))
    return out


# ---------------------------------------------------------------------------


def read_paths(path: str) -> list[tuple[int, str]] | None:
    """The Rust dump's sidecar (model-check writes RUST_DUMP.paths): per state, the line of its
    breadth-first parent (0 for the initial state) and the action from it."""
    try:
        with open(path + ".paths", encoding="utf-8") as f:
            rows = [line.rstrip("\n").split("\t", 1) for line in f]
    except OSError:
        return None
    return [(int(parent), action) for parent, action in rows]


def path_to(index: int, paths: list[tuple[int, str]]) -> list[str]:
    """The actions of the Rust checker's shortest path to its state number `index` (1-based)."""
    actions = []
    while index > 0 and paths[index - 1][0] > 0:
        parent, action = paths[index - 1]
        actions.append(action)
        index = parent
    return actions[::-1]


def nearest(line: str, others: list[str]) -> tuple[int, list[str]]:
    """The (0-based) position of the state of `others` that differs from `line` in the fewest
    variables, and those variables."""
    this = json.loads(line)
    best, best_diff = -1, None
    for i, other in enumerate(others):
        o = json.loads(other)
        diff = [k for k in VARIABLES if this[k] != o[k]]
        if best_diff is None or len(diff) < len(best_diff):
            best, best_diff = i, diff
            if len(diff) == 1:
                break
    return best, best_diff or []


def show_path(actions: list[str]) -> None:
    print(f"      reached by ({len(actions)} steps): {', '.join(actions) or '(initial state)'}")


def report(tlc: list[str], rust: list[str], only_tlc: set[str], only_rust: set[str],
           paths: list[tuple[int, str]] | None) -> None:
    if only_tlc:
        first = next(line for line in tlc if line in only_tlc)
        print(f"  first TLC state missing from Rust (#{tlc.index(first) + 1} in TLC's BFS order):")
        print(f"    {first}")
        i, diff = nearest(first, rust)
        if i >= 0:
            print(f"  nearest Rust state (differs in {', '.join(diff)}):")
            print(f"    {rust[i]}")
            if paths:
                show_path(path_to(i + 1, paths))
    if only_rust:
        first = next(line for line in rust if line in only_rust)
        index = rust.index(first) + 1
        print(f"  first Rust state missing from TLC (#{index} in Rust's BFS order):")
        print(f"    {first}")
        if paths:
            # Its breadth-first parent comes earlier, so TLC has it: the last step is where
            # the two disagree.
            show_path(path_to(index, paths))
        i, diff = nearest(first, tlc)
        if i >= 0:
            print(f"  nearest TLC state (differs in {', '.join(diff)}):")
            print(f"    {tlc[i]}")


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        tlc = read_tlc(argv[1])
        rust = read_rust(argv[2])
    except (OSError, ParseError, ValueError) as err:
        print(f"compare: {err}", file=sys.stderr)
        return 2
    tlc_set, rust_set = set(tlc), set(rust)
    dup_tlc, dup_rust = len(tlc) - len(tlc_set), len(rust) - len(rust_set)
    only_tlc, only_rust = tlc_set - rust_set, rust_set - tlc_set
    if not only_tlc and not only_rust and not dup_tlc and not dup_rust:
        print(f"same state set: {len(tlc_set)} states")
        return 0
    print(
        f"DIFFERENT state sets: TLC {len(tlc_set)} states, Rust {len(rust_set)}; "
        f"{len(only_tlc)} only in TLC, {len(only_rust)} only in Rust"
        + (f"; duplicates: TLC {dup_tlc}, Rust {dup_rust}" if dup_tlc or dup_rust else "")
    )
    report(tlc, rust, only_tlc, only_rust, read_paths(argv[2]))
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
