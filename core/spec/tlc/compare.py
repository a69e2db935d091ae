#!/usr/bin/env python3
"""Compare TLC's state graph with the Rust checker's, state for state and transition for
transition.

    compare.py TLC_DUMP RUST_DUMP

TLC_DUMP is what `tlc2.TLC -dump dot,actionlabels FILE` writes (FILE.dot: every state as a
node labelled with its `/\\ var = value` lines, values as TLA+ expressions, and every
transition as an edge labelled with its action's name), or what the plain `-dump FILE`
writes (FILE.dump: the same "State N:" blocks, no transitions). RUST_DUMP is what
`model-check --symmetry off --dump FILE` writes: one JSON object per line with the spec's
variables (model-check/src/dump.rs), and FILE.edges beside it (source line, target line,
event). Both sides' states are normalised to one canonical line each (sorted-key compact
JSON):

    state, view, view_number, believes_primary, term, heartbeat_received, detected
        lists indexed by node (n1 first); sets as ascending lists of node numbers
    partitioned     ascending list of [a, b] pairs
    term_counter, view_counter, epoch_counter
    placements      ascending list of [actor, node, epoch]
    queue           ascending list of [actor, from, reason]

The two state SETS are compared; when they are equal and both dumps have transitions, the
two sets of (source, target, action name) triples are compared too (a guard that changes
only which transitions exist, not which states are reachable, shows only there).

Exit status 0 when they are equal; 1 when they differ: the first state of each side (in that
side's breadth-first order) that the other lacks is printed, with the nearest state of the
other side, the variables where they differ and the breadth-first path to each (so the last
step of the path to the first Rust-only state is where the two disagree), or the first
transition of each side that the other lacks, with the path to its source; 2 for unreadable
input. Python 3 standard library only.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from dataclasses import dataclass

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


def block_values(lines: list[str], where: str) -> dict[str, str]:
    """The variables of one state: `/\\ name = value` lines (a long value may continue on
    the following, indented lines)."""
    values: dict[str, str] = {}
    current = None
    for line in lines:
        if line.startswith("/\\ "):
            name, sep, value = line[3:].partition(" = ")
            if not sep:
                raise ParseError(f"{where}: unexpected line {line!r}")
            current = name
            values[name] = value
        elif line.strip() and current is not None:
            values[current] += " " + line.strip()
        elif line.strip():
            raise ParseError(f"{where}: unexpected line {line!r}")
    return values


@dataclass
class Dump:
    """One side's state graph: canonical lines in the side's (breadth-first) order, and, when
    the dump has them, the transitions as (source, target, action) with 0-based positions in
    `states` (action: the Rust event with its arguments, or TLC's action name)."""

    states: list[str]
    edges: list[tuple[int, int, str]] | None = None


def read_tlc(path: str) -> Dump:
    """TLC's `-dump FILE` (FILE.dump: states only) or `-dump dot,actionlabels FILE` (FILE.dot:
    the same TLA+ expressions as node labels, and every transition with its action name)."""
    if path.endswith(".dot"):
        return read_tlc_dot(path)
    states = []
    block: list[str] | None = None
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.rstrip("\n")
            if line.startswith("State ") and line.endswith(":"):
                if block is not None:
                    states.append(tlc_canonical(block_values(block, path)))
                block = []
            elif block is not None:
                block.append(line)
            elif line.strip():
                raise ParseError(f"{path}: unexpected line {line!r}")
    if block is not None:
        states.append(tlc_canonical(block_values(block, path)))
    return Dump(states)


def unescape(label: str) -> str:
    """A DOT label's text: TLC escapes backslash, double quote and newline."""
    return (
        label.replace("\\\\", "\0")
        .replace("\\n", "\n")
        .replace('\\"', '"')
        .replace("\0", "\\")
    )


def read_tlc_dot(path: str) -> Dump:
    ids: dict[str, int] = {}  # TLC's state fingerprint -> position in `states`
    states: list[str | None] = []
    raw_edges: list[tuple[str, str, str]] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            first, _, rest = line.partition(" ")
            if rest.startswith("-> "):
                # 123 -> 456 [label="Action",color=...];
                target, _, attrs = rest[3:].partition(" ")
                start = attrs.find('label="') + 7
                raw_edges.append((first, target, attrs[start : attrs.index('"', start)]))
            elif rest.startswith('[label="'):
                # 123 [label="/\\ x = 1\n/\\ y = ..."]: the closing quote is the last one.
                label = rest[8 : rest.rindex('"')]
                text = unescape(label)
                if first not in ids:
                    ids[first] = len(states)
                    states.append(tlc_canonical(block_values(text.split("\n"), path)))
    missing = {e for a, b, _ in raw_edges for e in (a, b) if e not in ids}
    if missing:
        raise ParseError(f"{path}: {len(missing)} transitions name states without a label")
    edges = [(ids[a], ids[b], action) for a, b, action in raw_edges]
    return Dump(states, edges)


def read_rust(path: str) -> Dump:
    """model-check's --dump FILE, and FILE.edges beside it when it exists."""
    states = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                obj = json.loads(line)
                if set(obj) != set(VARIABLES):
                    raise ParseError(f"Rust line has keys {sorted(obj)}")
                states.append(canonical(obj))
    try:
        f = open(path + ".edges", encoding="utf-8")
    except FileNotFoundError:
        return Dump(states)
    edges = []
    with f:
        for line in f:
            src, dst, action = line.rstrip("\n").split("\t")
            edges.append((int(src) - 1, int(dst) - 1, action))
    return Dump(states, edges)


# ---------------------------------------------------------------------------
# Reporting a difference.


def parents(dump: Dump) -> list[tuple[int, str] | None]:
    """Per state, its breadth-first parent and the action from it: the first transition into
    it (the dump lists transitions in breadth-first order of their source)."""
    out: list[tuple[int, str] | None] = [None] * len(dump.states)
    for src, dst, action in dump.edges or []:
        if dst != 0 and out[dst] is None:
            out[dst] = (src, action)
    return out


def path_to(index: int, parent: list[tuple[int, str] | None]) -> list[str]:
    """The actions of the breadth-first path to state `index` (0-based)."""
    actions = []
    while parent[index] is not None:
        index, action = parent[index]
        actions.append(action)
    return actions[::-1]


def show_path(dump: Dump, index: int) -> None:
    if dump.edges is not None:
        actions = path_to(index, parents(dump))
        text = ", ".join(actions) or "(the initial state)"
        print(f"      reached by ({len(actions)} steps): {text}")


def nearest(line: str, others: list[str]) -> tuple[int, list[str]]:
    """The position of the state of `others` that differs from `line` in the fewest variables,
    and those variables."""
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


def report_states(tlc: Dump, rust: Dump, only_tlc: set[str], only_rust: set[str]) -> None:
    if only_tlc:
        first = next(i for i, line in enumerate(tlc.states) if line in only_tlc)
        print(f"  first TLC state missing from Rust (#{first + 1} in TLC's BFS order):")
        print(f"    {tlc.states[first]}")
        show_path(tlc, first)
        i, diff = nearest(tlc.states[first], rust.states)
        if i >= 0:
            print(f"  nearest Rust state (differs in {', '.join(diff)}):")
            print(f"    {rust.states[i]}")
            show_path(rust, i)
    if only_rust:
        first = next(i for i, line in enumerate(rust.states) if line in only_rust)
        print(f"  first Rust state missing from TLC (#{first + 1} in Rust's BFS order):")
        print(f"    {rust.states[first]}")
        # Its breadth-first parent comes earlier, so TLC has it: the last step is where the
        # two disagree.
        show_path(rust, first)
        i, diff = nearest(rust.states[first], tlc.states)
        if i >= 0:
            print(f"  nearest TLC state (differs in {', '.join(diff)}):")
            print(f"    {tlc.states[i]}")
            show_path(tlc, i)


@functools.lru_cache(maxsize=None)
def action_name(action: str) -> str:
    """`SyncViews(n1, n2)` -> `SyncViews`: TLC labels a transition with the action's name."""
    return action.split("(", 1)[0]


def compare_edges(tlc: Dump, rust: Dump) -> bool:
    """The transition relations, as sets of (source, target, action name); the state sets are
    equal. Prints the first difference on each side and returns False when they differ."""
    assert tlc.edges is not None and rust.edges is not None
    position = {line: i for i, line in enumerate(rust.states)}
    to_rust = [position[line] for line in tlc.states]  # TLC position -> Rust position
    tlc_keys = {(to_rust[a], to_rust[b], name) for a, b, name in tlc.edges}
    rust_keys = {(a, b, action_name(action)) for a, b, action in rust.edges}
    if tlc_keys == rust_keys:
        print(f"same transitions: {len(rust_keys)} (source, target, action) triples")
        return True
    only_tlc, only_rust = tlc_keys - rust_keys, rust_keys - tlc_keys
    print(
        f"DIFFERENT transitions: TLC {len(tlc_keys)}, Rust {len(rust_keys)} (source, target, "
        f"action) triples; {len(only_tlc)} only in TLC, {len(only_rust)} only in Rust"
    )
    # The first of each side in breadth-first order of the source (Rust's order).
    if only_tlc:
        src, dst, name = min(only_tlc)
        print(f"  a TLC transition that Rust lacks: {name}")
        print(f"    from {rust.states[src]}")
        show_path(rust, src)
        print(f"    to   {rust.states[dst]}")
    if only_rust:
        src, dst, action = next(
            (a, b, action) for a, b, action in rust.edges
            if (a, b, action_name(action)) in only_rust
        )  # fmt: skip
        print(f"  a Rust transition that TLC lacks: {action}")
        print(f"    from {rust.states[src]}")
        show_path(rust, src)
        print(f"    to   {rust.states[dst]}")
    return False


def compare(tlc: Dump, rust: Dump) -> bool:
    tlc_set, rust_set = set(tlc.states), set(rust.states)
    dup_tlc, dup_rust = len(tlc.states) - len(tlc_set), len(rust.states) - len(rust_set)
    only_tlc, only_rust = tlc_set - rust_set, rust_set - tlc_set
    if only_tlc or only_rust or dup_tlc or dup_rust:
        print(
            f"DIFFERENT state sets: TLC {len(tlc_set)} states, Rust {len(rust_set)}; "
            f"{len(only_tlc)} only in TLC, {len(only_rust)} only in Rust"
            + (f"; duplicates: TLC {dup_tlc}, Rust {dup_rust}" if dup_tlc or dup_rust else "")
        )
        report_states(tlc, rust, only_tlc, only_rust)
        return False
    print(f"same state set: {len(tlc_set)} states")
    if tlc.edges is None or rust.edges is None:
        return True
    return compare_edges(tlc, rust)


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
    return 0 if compare(tlc, rust) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
