#!/usr/bin/env python3
"""TLC against the Rust checker on the small configurations of this folder.

    crosscheck.py --jar tla2tools.jar --model-check BIN [--keep DIR] [--all | CFG ...]

Run by run.sh, which finds the jar and builds the checker. For each TLC configuration
(default: every *.cfg beside this script, in name order):

1. TLC checks Membership.tla with it (breadth-first, -workers 2) and dumps its state
   graph (-dump dot,actionlabels). Every property the configuration lists must hold.
2. The Rust checker (`model-check`) explores the same parameters, derived from the
   configuration's CONSTANTS, with --symmetry off --liveness off, and dumps its states
   and transitions (--dump, model-check/src/dump.rs).
3. compare.py turns both dumps into canonical lines; the state SETS must be equal, and so
   must the sets of (source, target, action name) transitions (the first difference of
   each side is printed otherwise).
4. The safety verdicts must agree: every property Rust finds holding is listed in the
   configuration (so TLC verified it), and every property Rust finds violated is
   violated in TLC too, with a shortest counterexample of the same length (TLC run
   with that property alone, -workers 1, so its breadth-first trace is shortest).

Prints one line per configuration (TLC and Rust states, wall times, states per second,
peak resident memory of each process through GNU time) and exits 0 only if every
configuration agrees; 1 on any disagreement; 2 when a tool fails to run. TLC's work
files (states/, the dump, a copy of the spec) live in a temporary directory. Python 3
standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
SPEC = HERE.parent / "Membership.tla"
sys.path.insert(0, str(HERE))
import compare  # noqa: E402  (beside this script)

JAVA_OPTS = ["-Xmx2g", "-XX:+UseParallelGC"]
ACTORS_MAX = 10_000_000  # Rust's default Config::actors_max, which the checker runs with

STATE_PROPERTIES = [
    "TypeOK",
    "MembershipConsistency",
    "JoinAtomicity",
    "LeaveDetectionWeak",
    "NoSplitBrain",
    "AtMostOnePrimary",
    "SingleActivation",
    "MigrationQueueBounded",
]
ACTION_PROPERTIES = [
    "FencingTermMonotonic",
    "MinorityCannotElect",
    "FailureRequiresDetection",
    "FailureNeedsQuorum",
    "EpochMonotonic",
    "MigrationByPrimary",
    "OwnHeartbeat",
    "VotesExpireWithRound",
]


class Failure(Exception):
    """A tool could not be run or its output could not be read."""


@dataclass
class Run:
    code: int
    seconds: float
    peak_mib: float | None
    out: str


GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


def run(cmd: list[str], cwd: Path, log: Path) -> Run:
    """Runs cmd with its output in `log`: wall time, and peak resident memory through GNU
    time when it is installed (rusage of a child spawned from this process would also count
    this process's own memory, which Linux carries over an exec)."""
    mem = log.with_suffix(".maxrss")
    prefix = [GNU_TIME, "-f", "%M", "-o", str(mem)] if GNU_TIME else []
    started = time.monotonic()
    with open(log, "w", encoding="utf-8") as f:
        code = subprocess.run(prefix + cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT).returncode
    seconds = time.monotonic() - started
    peak = None
    if GNU_TIME and mem.exists():
        try:
            peak = int(mem.read_text().split()[-1]) / 1024.0
        except (ValueError, IndexError):
            peak = None
    return Run(code, seconds, peak, log.read_text())


def mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


@dataclass
class Config:
    path: Path
    constants: dict[str, str]
    invariants: list[str]
    properties: list[str]

    @property
    def name(self) -> str:
        return self.path.stem

    def rust_flags(self) -> list[str]:
        c = self.constants
        nodes = sorted(compare.parse_value(c["Nodes"]))
        actors = sorted(compare.parse_value(c["Actors"]))
        mode = json.loads(c["Mode"])
        if nodes != list(range(1, len(nodes) + 1)):
            raise Failure(f"{self.name}: Nodes must be 1..n, not {c['Nodes']}")
        if actors != list(range(1, len(actors) + 1)):
            raise Failure(f"{self.name}: Actors must be 1..n, not {c['Actors']}")
        if mode != "fixed" and actors:
            raise Failure(f"{self.name}: the reference modes have no actors")
        if int(c["ActorsMax"]) != ACTORS_MAX:
            raise Failure(f"{self.name}: ActorsMax must be {ACTORS_MAX}, as in Rust")
        if c.get("Choose") != "<- LeastLoaded":
            raise Failure(f"{self.name}: Choose must be LeastLoaded, as in Rust's step")
        return [
            "--spec", mode,
            "--nodes", str(len(nodes)),
            "--max-view", c["MaxView"],
            "--actors", str(len(actors)),
            "--max-epoch", c["MaxEpoch"],
        ]  # fmt: skip

    def text_with(self, invariants: list[str], properties: list[str]) -> str:
        """This configuration's constants with other properties to check."""
        lines = ["SPECIFICATION Spec", "", "CONSTANTS"]
        for name, value in self.constants.items():
            sep = " " if value.startswith("<-") else " = "
            lines.append(f"    {name}{sep}{value}")
        for title, names in (("INVARIANTS", invariants), ("PROPERTIES", properties)):
            if names:
                lines += ["", title] + [f"    {n}" for n in names]
        return "\n".join(lines) + "\n"


def read_config(path: Path) -> Config:
    constants: dict[str, str] = {}
    sections: dict[str, list[str]] = {"INVARIANTS": [], "PROPERTIES": []}
    section = None
    for raw in path.read_text().splitlines():
        line = raw.split("\\*", 1)[0].strip()
        if not line:
            continue
        if line in ("CONSTANTS", "INVARIANTS", "PROPERTIES") or line.startswith("SPECIFICATION"):
            section = line.split()[0]
            continue
        if section == "CONSTANTS":
            m = re.match(r"^(\w+)\s*(=\s*(.*)|(<-\s*\w+))$", line)
            if not m:
                raise Failure(f"{path.name}: cannot read constant line {line!r}")
            constants[m.group(1)] = m.group(3) if m.group(3) is not None else m.group(4)
        elif section in sections:
            sections[section] += line.split()
        else:
            raise Failure(f"{path.name}: unexpected line {line!r}")
    for name in ("Nodes", "MaxView", "Mode", "Actors", "MaxEpoch", "ActorsMax", "Choose"):
        if name not in constants:
            raise Failure(f"{path.name}: no constant {name}")
    return Config(path, constants, sections["INVARIANTS"], sections["PROPERTIES"])


def tlc(jar: str, cfg_text: str, work: Path, tag: str, workers: int, dump: bool) -> Run:
    (work / f"{tag}.cfg").write_text(cfg_text)
    cmd = ["java", *JAVA_OPTS, "-cp", jar, "tlc2.TLC", "-workers", str(workers),
           "-metadir", str(work / f"states-{tag}"), "-config", f"{tag}.cfg"]  # fmt: skip
    if dump:
        cmd += ["-dump", "dot,actionlabels", str(work / tag)]
    cmd.append("Membership.tla")
    result = run(cmd, work, work / f"{tag}.tlc.log")
    shutil.rmtree(work / f"states-{tag}", ignore_errors=True)
    return result


def distinct_states(out: str) -> int:
    # The final count (progress reports print the same words earlier).
    found = re.findall(r"^[\d,]+ states generated, ([\d,]+) distinct states found", out, re.M)
    if not found:
        raise Failure("TLC printed no state count:\n" + tail(out))
    return int(found[-1].replace(",", ""))


def tail(text: str, lines: int = 25) -> str:
    return "\n".join("    " + l for l in text.splitlines()[-lines:])


def tlc_violation(out: str) -> tuple[str, int] | None:
    """(property, steps) of the violation TLC reports, if any."""
    m = re.search(r"^Error: (?:Invariant|Action property) (\w+) is violated", out, re.M)
    if not m:
        return None
    states = re.findall(r"^State (\d+): ", out[m.end():], re.M)
    return m.group(1), (int(states[-1]) - 1 if states else 0)


def check(cfg: Config, jar: str, model_check: str, work: Path, keep: bool) -> tuple[bool, str]:
    """Cross-checks one configuration; returns (agrees, table row)."""
    problems = []
    flags = cfg.rust_flags()
    shutil.copy(SPEC, work / "Membership.tla")

    t = tlc(jar, cfg.text_with(cfg.invariants, cfg.properties), work, "tlc", 2, True)
    if t.code != 0 or "Model checking completed. No error has been found." not in t.out:
        problems.append(f"TLC did not pass (exit {t.code}):\n" + tail(t.out))
    tlc_states = distinct_states(t.out)

    rust_dump = work / "rust.jsonl"
    cmd = [model_check, *flags, "--symmetry", "off", "--liveness", "off", "--json",
           "--dump", str(rust_dump)]  # fmt: skip
    r = run(cmd, work, work / "rust.log")
    m = re.search(r"^dump: (\d+) states written", r.out, re.M)
    if r.code not in (0, 1) or not m:
        raise Failure(f"{cfg.name}: model-check failed (exit {r.code}):\n" + tail(r.out))
    summary = json.loads(r.out[r.out.index("{") : r.out.rindex("}") + 1])
    rust_states = summary["distinct_states"]
    # GNU time's figure (with the dump, as TLC's); else the checker's own, before the dump.
    rust_peak = r.peak_mib if r.peak_mib is not None else summary.get("peak_memory_mib")

    # The state sets and the transition relations.
    tlc_dump = work / "tlc.dot"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        same = compare.compare(compare.read_tlc(str(tlc_dump)), compare.read_rust(str(rust_dump)))
    if tlc_states != rust_states:
        problems.append(f"TLC counted {tlc_states} states, Rust {rust_states}")
    if not same:
        problems.append(out.getvalue().rstrip())
    m = re.search(r"same transitions: (\d+)", out.getvalue())
    transitions = m.group(1) if m else "-"
    if not keep:
        for f in (tlc_dump, rust_dump, Path(f"{rust_dump}.edges")):
            f.unlink(missing_ok=True)

    # The safety verdicts.
    verdicts = {p["name"]: p for p in summary["properties"] if p["kind"] != "liveness"}
    checked = set(cfg.invariants) | set(cfg.properties)
    violated = []
    for name in STATE_PROPERTIES + ACTION_PROPERTIES:
        p = verdicts.get(name)
        if p is None:
            problems.append(f"Rust reported no verdict on {name}")
        elif p["verdict"] == "holds" and name not in checked:
            problems.append(f"Rust: {name} holds, but {cfg.path.name} does not list it for TLC")
        elif p["verdict"] == "violated" and name in checked:
            problems.append(f"Rust: {name} violated, TLC: holds")
        elif p["verdict"] == "violated":
            steps = p["counterexample_length"]
            invs, props = ([name], []) if name in STATE_PROPERTIES else ([], [name])
            v = tlc(jar, cfg.text_with(invs, props), work, f"v-{name}", 1, False)
            found = tlc_violation(v.out)
            if found is None:
                problems.append(
                    f"Rust: {name} violated in {steps} steps, TLC: no violation "
                    f"(exit {v.code}):\n" + tail(v.out)
                )
            elif found != (name, steps):
                problems.append(
                    f"Rust: {name} violated in {steps} steps, "
                    f"TLC: {found[0]} violated in {found[1]} steps"
                )
            else:
                violated.append(f"{name} {steps}")
    ok = not problems
    row = (
        f"{cfg.name:<14} {tlc_states:>8} {rust_states:>8} {transitions:>8} "
        f"{'same' if ok else 'DIFFER':>6} {t.seconds:>6.1f} {r.seconds:>6.2f} "
        f"{tlc_states / t.seconds:>8.0f} {rust_states / r.seconds:>8.0f} "
        f"{mib(t.peak_mib):>7} {mib(rust_peak):>7}  {', '.join(violated) if violated else '-'}"
    )
    if problems:
        row += "\n" + "\n".join("  " + line for p in problems for line in p.splitlines())
    return ok, row


HEADER = (
    f"{'config':<14} {'TLC st':>8} {'Rust st':>8} {'edges':>8} {'graphs':>6} {'TLC s':>6} "
    f"{'Rust s':>6} {'TLC st/s':>8} {'Rust/s':>8} {'TLC MiB':>7} {'RustMiB':>7}  "
    "violated: property and shortest counterexample, equal in both"
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jar", required=True, help="tla2tools.jar")
    ap.add_argument("--model-check", required=True, help="the model-check binary")
    ap.add_argument("--keep", help="keep the work files (TLC's and Rust's dumps) in this directory")
    ap.add_argument(
        "--all", action="store_true", help="also the larger configurations of extended/"
    )
    ap.add_argument("configs", nargs="*", help="TLC configurations (default: all here)")
    args = ap.parse_args()
    paths = [Path(c) for c in args.configs] or sorted(HERE.glob("*.cfg"))
    if args.all and not args.configs:
        paths += sorted((HERE / "extended").glob("*.cfg"))
    started = time.monotonic()
    all_ok = True
    print(HEADER, flush=True)
    with tempfile.TemporaryDirectory(prefix="tlc-crosscheck-") as tmp:
        base = Path(args.keep) if args.keep else Path(tmp)
        for path in paths:
            work = base / path.stem
            work.mkdir(parents=True, exist_ok=True)
            try:
                ok, row = check(
                    read_config(path),
                    str(Path(args.jar).resolve()),
                    str(Path(args.model_check).resolve()),
                    work,
                    bool(args.keep),
                )
            except (Failure, compare.ParseError, OSError, ValueError) as err:
                print(f"{path.stem}: ERROR {err}", flush=True)
                return 2
            all_ok &= ok
            print(row, flush=True)
    print(
        "columns: distinct states of each side; distinct (source, target, action) transitions,"
        " equal on both sides; whether the state sets and the transitions are the same;"
        " wall seconds of each process (TLC: JVM start, -workers 2, writing its dump; Rust:"
        " model-check writing its dump); distinct states per wall second; peak resident"
        f" memory (MiB). Total {time.monotonic() - started:.0f} s."
    )
    print("result: " + ("TLC and Rust agree on every configuration" if all_ok else "MISMATCH"))
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
