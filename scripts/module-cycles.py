#!/usr/bin/env python3
"""Fails if a module of a workspace crate imports another module that imports it back.

For every crate root (`<crate>/src/lib.rs`, `<crate>/src/main.rs`) it walks the module tree
(`mod x;` declarations, `x.rs` or `x/mod.rs`), reads every path that names the crate's own items
(`use crate::...`, `use super::...`, `use self::...`, `use child::...` for a child module, and
`crate::`/`super::`/`self::`/`child::` paths in code), and resolves each path to the module that
defines the item, looking through re-exports (`pub use`, and the private imports a child sees via `super::`).
A re-export itself is not a dependency of the module that re-exports (it is a facade). Comments
(and so doc links) are ignored, and so are method calls (`x.f()` names no module); `#[cfg(test)]` modules count like the rest of their file.

An edge between two modules is lifted to the children of their deepest common ancestor: a
reference from `a::x` to `b` is an edge `a -> b` of the crate root's children, a reference from
`a::x` to `a::y` an edge `x -> y` among the children of `a`, and a reference from `a::x` to an item
defined in `a`'s own file an edge `a::x -> a`. Every strongly connected component of two or more
modules is reported as a cycle, with one path around it and the file lines that make its edges.

Usage: scripts/module-cycles.py [CRATE_DIR ...]   (default: every workspace member)
Exit status 0 when no crate has a cycle, 1 otherwise.
"""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CRATES = ["core", "drivers", "model-check", "tests"]
# Bound on path resolution through re-exports (a chain longer than this is a re-export loop).
RESOLVE_DEPTH_MAX = 64


def strip_comments_and_strings(text):
    """Blanks comments, string and char literals, keeping line breaks (so line numbers hold)."""
    out = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            i = j
            continue
        if text.startswith("/*", i):
            depth = 0
            while i < n:
                if text.startswith("/*", i):
                    depth += 1
                    i += 2
                elif text.startswith("*/", i):
                    depth -= 1
                    i += 2
                    if depth == 0:
                        break
                else:
                    if text[i] == "\n":
                        out.append("\n")
                    i += 1
            continue
        m = re.match(r'b?r(#*)"', text[i:i + 12])
        if m and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            end = '"' + m.group(1)
            j = text.find(end, i + len(m.group(0)))
            j = n if j < 0 else j + len(end)
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j
            continue
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j + 1
            continue
        if c == "'":
            # A char literal ('x', '\n', '\u{..}'), not a lifetime ('a).
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'", text[i:i + 12])
            if m:
                out.append("' '")
                i += len(m.group(0))
                continue
        out.append(c)
        i += 1
    return "".join(out)


class Module:
    def __init__(self, path, file, dir_for_children):
        self.path = path  # tuple of segments; () is the crate root
        self.file = file
        self.dir = dir_for_children
        self.children = {}  # name -> Module
        self.names = {}  # imported name -> (absolute target path tuple or None, is_pub)
        self.refs = []  # (absolute path tuple, line) of this module's own references
        self.inline = {}  # inline module path (relative) is ignored; see parse


def parse_use_tree(tree):
    """Flattens a use tree ("a::{b, c::{d as e}, self}") into (path, alias) pairs."""
    tree = re.sub(r"\s+", "", tree)
    results = []

    def split_top(s):
        parts, depth, cur = [], 0, ""
        for ch in s:
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
            else:
                cur += ch
        if cur:
            parts.append(cur)
        return parts

    def walk(prefix, s):
        if not s:
            return
        brace = s.find("{")
        if brace >= 0 and s.endswith("}"):
            head = s[:brace]
            head = head[:-2] if head.endswith("::") else head
            base = prefix + ([x for x in head.split("::") if x] if head else [])
            for part in split_top(s[brace + 1:-1]):
                walk(base, part)
            return
        alias = None
        if "as" in s and re.search(r"[A-Za-z0-9_]as[A-Za-z_]", s):
            m = re.match(r"(.*?[A-Za-z0-9_*])as([A-Za-z_][A-Za-z0-9_]*)$", s)
            if m:
                s, alias = m.group(1), m.group(2)
        segs = [x for x in s.split("::") if x]
        if segs and segs[-1] == "self":
            segs = segs[:-1]
            full = prefix + segs
            results.append((full, alias or (full[-1] if full else None)))
            return
        full = prefix + segs
        results.append((full, alias or (full[-1] if full else None)))

    walk([], tree)
    return results


USE_RE = re.compile(r"(?m)^[ \t]*(pub(?:\([^)]*\))?[ \t]+)?use[ \t]+([^;]*);")
MOD_DECL_RE = re.compile(r"(?m)^[ \t]*(?:pub(?:\([^)]*\))?[ \t]+)?mod[ \t]+([A-Za-z_][A-Za-z0-9_]*)[ \t]*;")
INLINE_MOD_RE = re.compile(r"(?m)^[ \t]*(?:pub(?:\([^)]*\))?[ \t]+)?mod[ \t]+([A-Za-z_][A-Za-z0-9_]*)[ \t]*\{")
CHILD_PATH_RE = re.compile(r"(?<![A-Za-z0-9_:])([a-z_][a-z0-9_]*)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
PATH_RE = re.compile(r"(?<![A-Za-z0-9_:])((?:crate|self|super)(?:::(?:super|[A-Za-z_][A-Za-z0-9_]*))+)")


def inline_depth_at(text):
    """For each offset, how many inline `mod x { }` blocks enclose it (for `super::`)."""
    starts = [m.end() - 1 for m in INLINE_MOD_RE.finditer(text)]
    depth = [0] * (len(text) + 1)
    stack = []  # brace depth at which each inline module opened
    brace = 0
    k = 0
    starts_set = set(starts)
    for i, ch in enumerate(text):
        if ch == "{":
            brace += 1
            if i in starts_set:
                stack.append(brace)
        elif ch == "}":
            if stack and stack[-1] == brace:
                stack.pop()
            brace -= 1
        depth[i] = len(stack)
        k += 1
    return depth


def load_tree(crate_dir, root_file):
    src = os.path.join(crate_dir, "src")
    root = Module((), root_file, src)
    modules = {(): root}
    texts = {}

    def load(mod):
        with open(mod.file, encoding="utf-8") as f:
            text = strip_comments_and_strings(f.read())
        texts[mod.path] = text
        for m in MOD_DECL_RE.finditer(text):
            name = m.group(1)
            cand = [os.path.join(mod.dir, name + ".rs"), os.path.join(mod.dir, name, "mod.rs")]
            found = [c for c in cand if os.path.exists(c)]
            if not found:
                continue
            file = found[0]
            child = Module(mod.path + (name,), file, os.path.join(mod.dir, name))
            mod.children[name] = child
            modules[child.path] = child
            load(child)

    load(root)
    return modules, texts


def absolute(mod_path, segs, depth, children):
    """The absolute path (tuple) of a path written in module `mod_path`, or None if external."""
    if not segs:
        return None
    base = list(mod_path)
    first = segs[0]
    if first == "crate":
        return tuple(segs[1:])
    if first in ("self", "super"):
        # Inside `depth` inline modules, `self` is the inline module and the first `super`s climb
        # out of inline modules before climbing the file's module path.
        inline = depth
        i = 0
        if first == "self":
            i = 1
        while i < len(segs) and segs[i] == "super":
            if inline > 0:
                inline -= 1
            else:
                if not base:
                    return None
                base.pop()
            i += 1
        if inline > 0:
            # A path inside an inline module (e.g. `self::helper` in `mod tests`): same file.
            return tuple(base) + ("<inline>",) + tuple(segs[i:])
        return tuple(base) + tuple(segs[i:])
    if first in children and depth == 0:
        return tuple(base) + tuple(segs)
    return None


def collect(modules, texts):
    for path, mod in modules.items():
        text = texts[path]
        depth = inline_depth_at(text)
        use_spans = []
        for m in USE_RE.finditer(text):
            use_spans.append((m.start(), m.end()))
            is_pub = m.group(1) is not None
            line = text.count("\n", 0, m.start()) + 1
            d = depth[m.start()]
            for segs, alias in parse_use_tree(m.group(2)):
                target = absolute(path, segs, d, mod.children)
                if alias and alias != "*" and d == 0:
                    mod.names[alias] = (target, is_pub)
                if target is None:
                    continue
                if segs and segs[-1] == "*":
                    target = target[:-1]
                if not is_pub or d > 0:
                    mod.refs.append((target, line))
        for m in PATH_RE.finditer(text):
            if any(a <= m.start() < b for a, b in use_spans):
                continue
            segs = m.group(1).split("::")
            target = absolute(path, segs, depth[m.start()], mod.children)
            if target is not None:
                mod.refs.append((target, text.count("\n", 0, m.start()) + 1))
        for m in CHILD_PATH_RE.finditer(text):
            # A path in code through a child module (`timer::tick()`), outside `use` items.
            if m.group(1) not in mod.children or depth[m.start()] > 0:
                continue
            if any(a <= m.start() < b for a, b in use_spans):
                continue
            segs = [m.group(1)] + [x for x in m.group(2).split("::") if x]
            mod.refs.append((path + tuple(segs), text.count("\n", 0, m.start()) + 1))


def resolve(modules, target, hops=0):
    """The path of the module that defines the item `target` names (re-exports followed)."""
    if hops > RESOLVE_DEPTH_MAX:
        return None
    cur = ()
    segs = [s for s in target if s != "<inline>"]
    for i, seg in enumerate(segs):
        mod = modules[cur]
        if seg in mod.children:
            cur = cur + (seg,)
            continue
        if seg in mod.names:
            via, _ = mod.names[seg]
            if via is None:
                return None  # an external crate's item
            if tuple(via) == cur + (seg,):
                return cur
            return resolve(modules, tuple(via) + tuple(segs[i + 1:]), hops + 1)
        return cur  # an item defined in this module (or an enum variant, method, ...)
    return cur


def lift(a, b):
    """The edge between `a` and `b` lifted to the children of their common ancestor."""
    k = 0
    while k < len(a) and k < len(b) and a[k] == b[k]:
        k += 1
    return a[:k + 1] if len(a) > k else a[:k], b[:k + 1] if len(b) > k else b[:k]


def name(path):
    return "::".join(path) if path else "crate"


def find_cycles(modules):
    edges = {}  # (from, to) -> [(file, line)]
    for path, mod in modules.items():
        for target, line in mod.refs:
            defining = resolve(modules, target)
            if defining is None or defining == path:
                continue
            a, b = lift(path, defining)
            if a == b:
                continue
            edges.setdefault((a, b), []).append((mod.file, line))
    graph = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    # Tarjan's strongly connected components (iterative).
    index, low, on, stack, comps = {}, {}, set(), [], []
    counter = [0]
    for v0 in sorted(graph):
        if v0 in index:
            continue
        work = [(v0, iter(sorted(graph[v0])))]
        index[v0] = low[v0] = counter[0]
        counter[0] += 1
        stack.append(v0)
        on.add(v0)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    advanced = True
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    comps.append(sorted(comp))
    return comps, edges, graph


def cycle_path(comp, graph):
    """One cycle through the component's first module (breadth-first back to it)."""
    members = set(comp)
    start = comp[0]
    prev = {start: None}
    queue = [start]
    end = None
    while queue and end is None:
        nxt = []
        for v in queue:
            for w in sorted(graph[v]):
                if w not in members:
                    continue
                if w == start:
                    end = v
                    break
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
            if end is not None:
                break
        queue = nxt
    path = [end]
    while prev[path[-1]] is not None:
        path.append(prev[path[-1]])
    path.reverse()
    return path + [start]


def main(argv):
    crates = argv[1:] or DEFAULT_CRATES
    failed = False
    for crate in crates:
        crate_dir = crate if os.path.isabs(crate) else os.path.join(ROOT, crate)
        for root_name in ("lib.rs", "main.rs"):
            root_file = os.path.join(crate_dir, "src", root_name)
            if not os.path.exists(root_file):
                continue
            modules, texts = load_tree(crate_dir, root_file)
            collect(modules, texts)
            comps, edges, graph = find_cycles(modules)
            label = f"{os.path.relpath(crate_dir, ROOT)}/src/{root_name}"
            if not comps:
                print(f"{label}: {len(modules)} modules, no cycle")
                continue
            failed = True
            for comp in comps:
                path = cycle_path(comp, graph)
                print(f"{label}: module cycle: " + " -> ".join(name(p) for p in path))
                for a, b in zip(path, path[1:]):
                    sites = sorted(set(edges[(a, b)]))
                    where = ", ".join(f"{os.path.relpath(f, ROOT)}:{ln}" for f, ln in sites[:4])
                    more = f" (+{len(sites) - 4} more)" if len(sites) > 4 else ""
                    print(f"    {name(a)} -> {name(b)}: {where}{more}")
                if len(comp) > len(path) - 1:
                    members = set(comp)
                    print("    the modules that reach each other: " + ", ".join(name(p) for p in comp))
                    for (a, b), sites in sorted(edges.items()):
                        if a in members and b in members and (a, b) not in zip(path, path[1:]):
                            sites = sorted(set(sites))
                            where = ", ".join(f"{os.path.relpath(f, ROOT)}:{ln}" for f, ln in sites[:4])
                            print(f"    {name(a)} -> {name(b)}: {where}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
