#!/usr/bin/env python3
"""Source-level mutation testing: which check catches which planted bug.

    python3 scripts/mutation.py                 # every plant of scripts/mutation-plants.json
    python3 scripts/mutation.py --list          # the catalogue
    python3 scripts/mutation.py --only NAME[,NAME] [--all] [--keep]

Each plant of the catalogue (scripts/mutation-plants.json) is a real edit of production code
(the reducer, the Agent, the memory store), not a feature switch: a file, one or more exact
`search` texts and their `replace` texts (each text a list of lines), and one sentence saying
what real bug it models. A search text must occur exactly once in its file, or the script
refuses (exit 2, naming the plant) before running anything, so a plant cannot silently stop
applying after a refactor.

The revision under test (`--rev`, default HEAD; uncommitted changes are not included) is
copied with `git archive` into one scratch directory (`--scratch`, default /tmp/mutation/src);
the working tree the script is run from is never modified. First the unmodified copy is
checked (the baseline: every check must pass, else nothing could be judged; `--no-baseline`
skips it). Then, for each plant: its edits are applied to the scratch copy, the checks run in
order, cheapest first, and the file is restored:

    build         cargo build --workspace                (fails: a catalogue error, exit 2)
    model-check   cargo run -p model-check               (the default run; exit 1 = caught)
    core-tests    cargo test -p membership-core
    driver-tests  cargo test -p membership               (memory store only, no etcd)
    simulation    cargo test -p membership-sim           (the CI campaign)

A plant is caught by the first check that fails (a violated property, a failing test, a
panic); the later checks are then skipped unless `--all` is given. A check that cannot
compile the plant's file (model-check and core-tests do not build drivers/) is "n/a". A test
target that does not compile is a catalogue error. Each check has a timeout (CHECK_TIMEOUT_S,
reported as "timeout"). Every plant shares one cargo target directory (`--target-dir`, default
/tmp/mutation-target), so a plant rebuilds only the workspace crates (the first run builds
the dependencies once). Never seed it with hard links (`cp -al`) from another target
directory: cargo names a workspace crate's artifacts the same in every checkout, so the two
builds would write the same files and one could run the other's stale build (a copy, `cp -a`,
is safe).

The output is a table, plant | file | caught by | evidence | seconds, where the evidence is
the first line naming the violated property, the failing test and its panic message, or the
`SIMULATION FAILED` line; every check's full output is kept under <scratch>/../logs/<plant>/.
`--keep` also keeps each mutated tree (<scratch>/../kept/<plant>, without build output).
One run at a time may use a scratch directory's parent and a target directory (a lock file
in each, `mutation.lock`): a second run is refused (exit 2); give it its own `--scratch` and
`--target-dir`.

Exit status: 0 when every plant run is caught, 1 when one survives (each is named), 2 on a
catalogue error (a search text not found exactly once, a plant that does not compile) or a
baseline that fails.

Python 3 standard library only.
"""

import argparse
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CATALOGUE = os.path.join(REPO, "scripts", "mutation-plants.json")
CHECK_TIMEOUT_S = 20 * 60
DEFAULT_SCRATCH = "/tmp/mutation/src"
DEFAULT_TARGET = "/tmp/mutation-target"

# name, command, the top-level directories whose code the check compiles (a plant elsewhere
# cannot be caught by it), and whether a failure is a catalogue error rather than a catch.
CHECKS = [
    ("build", ["cargo", "build", "--workspace", "--locked"], None),
    ("model-check", ["cargo", "run", "--locked", "-p", "model-check"], {"core", "model-check"}),
    ("core-tests", ["cargo", "test", "--locked", "-p", "membership-core"], {"core"}),
    ("driver-tests", ["cargo", "test", "--locked", "-p", "membership"], {"core", "drivers"}),
    ("simulation", ["cargo", "test", "--locked", "-p", "membership-sim"], {"core", "drivers", "tests"}),
]
CHECK_NAMES = [c[0] for c in CHECKS]


class CatalogueError(Exception):
    pass


def text(value):
    """A search or replace text: a string, or a list of lines joined with newlines."""
    if isinstance(value, list):
        return "\n".join(value)
    return value


def load_catalogue(path):
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    plants = data["plants"]
    seen = set()
    for p in plants:
        for key in ("name", "file", "models", "edits"):
            if key not in p:
                raise CatalogueError(f"plant {p.get('name', '?')}: no '{key}'")
        if p["name"] in seen:
            raise CatalogueError(f"plant {p['name']}: named twice")
        seen.add(p["name"])
        if not p["edits"]:
            raise CatalogueError(f"plant {p['name']}: no edits")
    return plants


def mutated(plant, original):
    """The file's text with every edit of `plant` applied; each search text must occur exactly
    once in the original."""
    out = original
    for i, edit in enumerate(plant["edits"], 1):
        search, replace = text(edit["search"]), text(edit["replace"])
        count = original.count(search)
        if count != 1:
            raise CatalogueError(
                f"plant {plant['name']}: edit {i}'s search text occurs {count} times in "
                f"{plant['file']} (must be exactly once): {search.splitlines()[0]!r}"
            )
        if search == replace:
            raise CatalogueError(f"plant {plant['name']}: edit {i} changes nothing")
        out = out.replace(search, replace, 1)
    return out


def run(cmd, cwd, env, log_path, timeout_s):
    """Runs `cmd`; returns (exit code or None on timeout, output, seconds). The process group is
    killed on timeout."""
    start = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code = None
    with open(log_path, encoding="utf-8", errors="replace") as log:
        output = log.read()
    return code, output, time.monotonic() - start


def compile_error(output):
    m = re.search(r"^error(\[E\d+\])?: .*$", output, re.M)
    if m and "could not compile" in output:
        return m.group(0)
    return None


def model_check_evidence(output):
    configuration = None
    for line in output.splitlines():
        if line.startswith("== ["):
            configuration = line[3:].strip()
        m = re.match(r"\s+(\S+)\s+(state|transition|liveness)\s+violated(.*)", line)
        if m:
            where = f" in {configuration}" if configuration else ""
            return f"{m.group(1)} violated{m.group(3)}{where}"
    return panic_evidence(output)


def panic_evidence(output):
    m = re.search(r"panicked at ([^\n]*):\n([^\n]*)", output)
    if m:
        return f"panic at {m.group(1)}: {m.group(2) or '(empty message)'}"
    m = re.search(r"panicked at (.*)", output)
    if m:
        return f"panic at {m.group(1)}"
    return None


def test_evidence(output):
    """The failing test and its own panic message; among several failing tests, the CI campaign's
    simulation failure, else the first simulation failure (a check of the simulation, not a
    pinned trace), else the first failing test."""
    failed = re.findall(r"^test (\S+) \.\.\. FAILED", output, re.M)
    panics = {}
    for m in re.finditer(r"thread '([^']+)'(?: \(\d+\))? panicked at ([^\n]*):\n([^\n]*)", output):
        panics.setdefault(m.group(1), (m.group(2), m.group(3)))
    if failed:
        simulated = [t for t in failed if "SIMULATION FAILED" in panics.get(t, ("", ""))[1]]
        campaign = [t for t in simulated if "campaign" in t]
        chosen = (campaign or simulated or failed)[0]
        more = f" (and {len(failed) - 1} more of that target)" if len(failed) > 1 else ""
        where, message = panics.get(chosen, (None, None))
        if where is None:
            return f"test {chosen} FAILED{more}"
        return f"test {chosen} FAILED{more}: {message or '(empty message)'} (at {where})"
    panic = panic_evidence(output)
    if panic:
        return panic
    m = re.search(r"^error: test failed, to rerun pass (.*)$", output, re.M)
    if m:
        return f"test target {m.group(1)} failed"
    return None


def one_line(s, limit=220):
    s = " ".join(s.split()).replace("|", "\\|")
    return s if len(s) <= limit else s[: limit - 3] + "..."


def run_checks(label, scratch, env, logs, checks, plant_file, all_checks, timeout_s):
    """Runs `checks` on the scratch copy. Returns (verdict, check, evidence, seconds, rows)
    where verdict is caught, survived, timeout or error."""
    os.makedirs(logs, exist_ok=True)
    total = 0.0
    caught = None
    timeouts = []
    per_check = []
    for name, cmd, builds in checks:
        top = plant_file.split("/")[0] if plant_file else None
        if top and builds is not None and top not in builds:
            per_check.append((name, "n/a", f"does not build {top}/", 0.0))
            continue
        if caught and not all_checks:
            break
        code, output, secs = run(cmd, scratch, env, os.path.join(logs, name + ".log"), timeout_s)
        total += secs
        progress(f"  {label}: {name} exit {code} in {secs:.0f} s")
        if code is None:
            timeouts.append(name)
            per_check.append((name, "timeout", f"no result in {timeout_s} s", secs))
            continue
        if code == 0:
            per_check.append((name, "passed", "", secs))
            continue
        error = compile_error(output)
        if name == "build" or error:
            evidence = error or one_line(output.strip().splitlines()[-1] if output.strip() else "")
            per_check.append((name, "error", evidence, secs))
            return "error", name, f"does not compile: {evidence}", total, per_check
        if name == "model-check":
            evidence = model_check_evidence(output)
        else:
            evidence = test_evidence(output)
        evidence = evidence or f"exit {code} (see {os.path.join(logs, name + '.log')})"
        per_check.append((name, "caught", evidence, secs))
        if not caught:
            caught = (name, evidence)
    if caught:
        return "caught", caught[0], caught[1], total, per_check
    if timeouts:
        return "timeout", ",".join(timeouts), "timeout (nothing else caught it)", total, per_check
    return "survived", "-", "no check failed", total, per_check


def progress(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def main():
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--list", action="store_true", help="print the catalogue and exit")
    ap.add_argument("--only", help="comma-separated plant names")
    ap.add_argument("--all", action="store_true", help="run every check, not only until caught")
    ap.add_argument("--keep", action="store_true", help="keep each mutated tree")
    ap.add_argument("--rev", default="HEAD", help="the git revision to test (default HEAD)")
    ap.add_argument("--scratch", default=DEFAULT_SCRATCH, help="scratch copy (default %(default)s)")
    ap.add_argument("--target-dir", default=DEFAULT_TARGET, help="shared CARGO_TARGET_DIR (default %(default)s)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the check of the unmodified copy")
    ap.add_argument("--timeout", type=int, default=CHECK_TIMEOUT_S, help="seconds per check (default %(default)s)")
    ap.add_argument("--catalogue", default=CATALOGUE, help="the catalogue (default scripts/mutation-plants.json)")
    args = ap.parse_args()

    try:
        plants = load_catalogue(args.catalogue)
    except (CatalogueError, OSError, ValueError, KeyError) as e:
        print(f"catalogue error: {e}", file=sys.stderr)
        return 2
    if args.list:
        for p in plants:
            print(f"{p['name']:34} {p['file']:30} {p['models']}")
        return 0
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in {p["name"] for p in plants}]
        if unknown:
            print(f"unknown plant(s): {', '.join(unknown)} (see --list)", file=sys.stderr)
            return 2
        plants = [p for p in plants if p["name"] in wanted]

    scratch = os.path.abspath(args.scratch)
    if os.path.realpath(scratch).startswith(os.path.realpath(REPO) + os.sep) or os.path.realpath(scratch) == os.path.realpath(REPO):
        print("the scratch directory must lie outside the repository", file=sys.stderr)
        return 2
    base = os.path.dirname(scratch)
    # One run at a time per scratch directory and per target directory: a second run would
    # delete the first one's copy, and two cargo processes uplifting the same binary
    # (debug/model-check) into one target directory can run each other's build.
    locks = []
    for d in (base, os.path.abspath(args.target_dir)):
        os.makedirs(d, exist_ok=True)
        lock = open(os.path.join(d, "mutation.lock"), "a+", encoding="utf-8")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            print(f"{d} is in use by another mutation run ({holder}); give it its own "
                  "--scratch and --target-dir", file=sys.stderr)
            return 2
        lock.seek(0)
        lock.truncate()
        lock.write(f"pid {os.getpid()}, {REPO}\n")
        lock.flush()
        locks.append(lock)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", args.rev], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    if dirty and args.rev == "HEAD":
        progress("note: the working tree has uncommitted changes; they are NOT tested (HEAD is)")

    # A fresh copy of the revision (never the working tree itself).
    if os.path.exists(scratch):
        shutil.rmtree(scratch)
    os.makedirs(scratch)
    archive = subprocess.Popen(["git", "archive", args.rev], cwd=REPO, stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", scratch], stdin=archive.stdout, check=True)
    archive.stdout.close()
    if archive.wait() != 0:
        print(f"git archive {args.rev} failed", file=sys.stderr)
        return 2

    # Every plant must apply before anything runs.
    originals = {}
    try:
        for p in plants:
            path = os.path.join(scratch, p["file"])
            if not os.path.isfile(path):
                raise CatalogueError(f"plant {p['name']}: no file {p['file']} at {commit}")
            if p["file"] not in originals:
                with open(path, encoding="utf-8") as f:
                    originals[p["file"]] = f.read()
            mutated(p, originals[p["file"]])
    except CatalogueError as e:
        print(f"catalogue error: {e}", file=sys.stderr)
        return 2

    env = dict(os.environ)
    env["CARGO_TARGET_DIR"] = os.path.abspath(args.target_dir)
    env.setdefault("CARGO_TERM_COLOR", "never")
    logs = os.path.join(base, "logs")
    if os.path.exists(logs):
        shutil.rmtree(logs)
    with open(os.path.join(base, "results.txt"), "w", encoding="utf-8") as f:
        f.write(f"mutation testing of {commit}\n")
    started = time.monotonic()
    progress(f"testing {commit} in {scratch}, target dir {env['CARGO_TARGET_DIR']}, {len(plants)} plants")

    if not args.no_baseline:
        verdict, check, evidence, secs, rows = run_checks(
            "baseline", scratch, env, os.path.join(logs, "baseline"), CHECKS, None, True, args.timeout
        )
        bad = [r for r in rows if r[1] != "passed"]
        if bad:
            for name, outcome, ev, _ in bad:
                print(f"baseline: {name} {outcome}: {ev}", file=sys.stderr)
            print("the unmodified copy fails a check: no plant can be judged", file=sys.stderr)
            return 2
        progress(f"baseline: every check passes ({secs:.0f} s)")

    results = []
    for p in plants:
        path = os.path.join(scratch, p["file"])
        with open(path, "w", encoding="utf-8") as f:
            f.write(mutated(p, originals[p["file"]]))
        try:
            verdict, check, evidence, secs, rows = run_checks(
                p["name"], scratch, env, os.path.join(logs, p["name"]), CHECKS, p["file"], args.all, args.timeout
            )
            if args.keep:
                kept = os.path.join(base, "kept", p["name"])
                if os.path.exists(kept):
                    shutil.rmtree(kept)
                shutil.copytree(scratch, kept)
        finally:
            with open(path, "w", encoding="utf-8") as f:
                f.write(originals[p["file"]])
        progress(f"{p['name']}: {verdict} by {check} ({secs:.0f} s): {one_line(evidence, 160)}")
        results.append((p, verdict, check, evidence, secs, rows))
        with open(os.path.join(base, "results.txt"), "a", encoding="utf-8") as f:
            f.write(f"{commit} {p['name']} {verdict} {check} {secs:.0f}s {one_line(evidence)}\n")
            for name, outcome, ev, s in rows:
                f.write(f"    {name}: {outcome} {s:.0f}s {one_line(ev)}\n")

    wall = time.monotonic() - started
    print(f"mutation testing of {commit}: {len(results)} plants, {wall:.0f} s wall")
    print()
    print("| plant | file | caught by | evidence | seconds |")
    print("| --- | --- | --- | --- | --- |")
    for p, verdict, check, evidence, secs, rows in results:
        by = check if verdict == "caught" else f"**{verdict.upper()}**" + (f" ({check})" if verdict != "survived" else "")
        print(f"| `{p['name']}` | `{p['file']}` | {by} | {one_line(evidence)} | {secs:.0f} |")
    if args.all:
        print()
        print("| plant | " + " | ".join(CHECK_NAMES[1:]) + " |")
        print("| --- |" + " --- |" * (len(CHECK_NAMES) - 1))
        for p, verdict, check, evidence, secs, rows in results:
            outcome = {name: o for name, o, _, _ in rows}
            print(f"| `{p['name']}` | " + " | ".join(outcome.get(n, "-") for n in CHECK_NAMES[1:]) + " |")
    errors = [r for r in results if r[1] == "error"]
    survivors = [r for r in results if r[1] in ("survived", "timeout")]
    print()
    if errors:
        print("catalogue errors (a plant that does not compile): " + ", ".join(r[0]["name"] for r in errors))
        return 2
    if survivors:
        print("SURVIVED: " + ", ".join(f"{r[0]['name']} ({r[1]})" for r in survivors))
        return 1
    print(f"every plant caught ({len(results)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
