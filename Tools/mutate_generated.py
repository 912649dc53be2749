#!/usr/bin/env python3
"""Generated mutants: does the suite catch bugs that nobody wrote down?

Tools/mutate.py runs hand-written mutants, written by the same hands as the tests. This one makes
them: Tools/mutagen (a SwiftSyntax program) lists every mutation site in Sources/**/*.swift, and a
token mutator here does the same for the C loops (Sources/CLoops), the OpenCL kernels (Kernels/) and
the Python package (python/xai, through its syntax tree). The kinds: operators swapped, loop and
slice bounds moved by one, rounding flipped, constants nudged, abs/max/min/sqrt dropped, a term
dropped from a compound condition, two neighbouring arguments swapped, a statement removed.

A seeded sample of N sites (from every mutable file, or from the files a change touched) is applied
one at a time to a copy of the working tree (.build-mutate/tree), rebuilt incrementally, and tested
with the test classes Tools/mutation-map.json names for its file, fastest first, stopping at the first
failure. A mutant is killed when a test fails or runs past three times its unmutated time, invalid
when it does not compile (not counted), survived otherwise. Survivors are triaged in
Tools/mutation-triage.json: each either gets a test (and is killed on the next run) or a one-line
reason it is equivalent. Results persist per mutant (Tools/mutation-results/results.json), so an
interrupted run resumes where it stopped; a mutant is run again when its file changed. The sample
and the outcomes are kept in Tools/mutation-results/ (committed), the logs in .build-mutate/generated/.

    python3 Tools/mutate_generated.py --check-map            # every mutable file mapped, every test named exists
    python3 Tools/mutate_generated.py --sample 200 --seed 1  # `make mutate`
    python3 Tools/mutate_generated.py --sample 50 --changed origin/main
    python3 Tools/mutate_generated.py --sample 200 --seed 1 --list
    python3 Tools/mutate_generated.py --report               # the last run's table, without running

Not part of `make test` (a rebuild per mutant); `--check-map` is.
"""
import argparse
import ast
import fnmatch
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mutate  # noqa: E402  (the tree copy and the build and test commands are shared)

ROOT = mutate.ROOT
OUT = os.path.join(mutate.WORK, "generated")  # logs and the tree's build
# The samples and every mutant's outcome are committed (small), so that a run resumes on another
# machine and the score before and after the survivors' tests can be read back.
KEPT = os.path.join(ROOT, "Tools", "mutation-results")
RESULTS = os.path.join(KEPT, "results.json")
MAP = os.path.join(ROOT, "Tools", "mutation-map.json")
TRIAGE = os.path.join(ROOT, "Tools", "mutation-triage.json")
MUTAGEN_PACKAGE = os.path.join(ROOT, "Tools", "mutagen")
PAUSE = os.path.join(mutate.WORK, "pause")  # touch it to hold the run between mutants (a build elsewhere)
PRODUCTS = ["swift", "build", "-c", "release", "-Xswiftc", "-enable-testing", *mutate.NO_CMO]  # libxaic.so and xai for C and Python tests



# Files moved since the committed samples were drawn: new path -> the path their mutant ids hash.
MOVED = {f"Sources/XAIJobs/{name}.swift": f"Sources/XAICLI/{name}.swift" for name in ("ExplainJob", "Pipeline", "Inputs", "Report")}

# ---------------------------------------------------------------------------------------------
# The map: which tests cover which file.

def mutable_files():
    """Every file the generator may mutate, relative to ROOT."""
    found = []
    for base, exts in (("Sources", (".swift", ".c")), ("Kernels", (".cl", ".swift")), ("python/xai", (".py",)), ("Tools/gpu", (".py",))):
        for dirpath, _, names in os.walk(os.path.join(ROOT, base)):
            for name in names:
                if name.endswith(exts):
                    found.append(os.path.relpath(os.path.join(dirpath, name), ROOT))
    return sorted(found)


def load_map():
    entries = json.load(open(MAP))
    return {k: v for k, v in entries.items() if not k.startswith("//")}


def entry_for(path, entries):
    """The most specific entry (longest pattern) matching the path: an exact path, a folder/ prefix or a glob."""
    best = None
    for pattern in entries:
        if pattern == path or (pattern.endswith("/") and path.startswith(pattern)) or fnmatch.fnmatch(path, pattern):
            if best is None or len(pattern) > len(best):
                best = pattern
    return best


def swift_test_names():
    classes, methods = set(), set()
    for dirpath, _, names in os.walk(os.path.join(ROOT, "Tests")):
        for name in names:
            if name.endswith(".swift"):
                text = open(os.path.join(dirpath, name)).read()
                for cls, body in re.findall(r"class (\w+)\s*:\s*[\w, ]+\{(.*?)(?=\n(?:final )?class |\Z)", text, re.S):
                    if "func test" not in body:
                        continue
                    classes.add(cls)
                    for m in re.findall(r"func (test\w+)\(", body):
                        methods.add(f"{cls}/{m}")
    return classes, methods


def python_tests():
    names = set()
    for name in os.listdir(os.path.join(ROOT, "python", "tests")):
        if name.startswith("test_") and name.endswith(".py"):
            names.add(f"py:python/tests/{name}")
            for m in re.findall(r"^def (test_\w+)\(", open(os.path.join(ROOT, "python", "tests", name)).read(), re.M):
                names.add(f"py:python/tests/{name}::{m}")
    return names


def check_map():
    """Every mutable file has an entry; every entry matches a file; every named test exists; every test is named."""
    entries = load_map()
    classes, methods = swift_test_names()
    py = python_tests()
    problems = []
    used = set()
    for path in mutable_files():
        e = entry_for(path, entries)
        if e is None:
            problems.append(f"{path}: no entry in {os.path.relpath(MAP, ROOT)} (name its tests, or exclude it with a reason)")
        else:
            used.add(e)
    for pattern, value in entries.items():
        if pattern not in used:
            problems.append(f"entry '{pattern}' matches no mutable file (or a more specific entry covers all it matches)")
        if isinstance(value, dict):
            if not value.get("exclude"):
                problems.append(f"entry '{pattern}': an object must say why it is excluded (\"exclude\": reason)")
            continue
        if not isinstance(value, list) or not value:
            problems.append(f"entry '{pattern}': a non-empty list of tests, or {{\"exclude\": reason}}")
            continue
        for t in value:
            ok = (t == "C") or (t in py) or (t in classes) or (t in methods)
            if not ok:
                problems.append(f"entry '{pattern}': test '{t}' does not exist")
    # A test class or file no entry names never runs against a mutant: its kills are lost.
    named = {t.split("::")[0] if t.startswith("py:") else t.split("/")[0] for v in entries.values() if isinstance(v, list) for t in v}
    for t in sorted(classes | {p for p in py if "::" not in p}):
        if t not in named:
            problems.append(f"test '{t}' is named by no entry: the mutants of the files it checks never meet it")
    return problems


# ---------------------------------------------------------------------------------------------
# Sites.

def mutagen_binary():
    binary = os.path.join(MUTAGEN_PACKAGE, ".build", "release", "mutagen")
    sources = os.path.join(MUTAGEN_PACKAGE, "Sources", "mutagen", "main.swift")
    if not os.path.exists(binary) or os.path.getmtime(binary) < os.path.getmtime(sources):
        print("building Tools/mutagen (swift-syntax; a few minutes the first time) ...", flush=True)
        if subprocess.run(["swift", "build", "-c", "release", "--package-path", MUTAGEN_PACKAGE],
                          stdout=subprocess.DEVNULL).returncode != 0:
            sys.exit("Tools/mutagen does not build")
    return binary


def swift_sites(paths):
    if not paths:
        return []
    out = subprocess.run([mutagen_binary()] + paths, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


C_TYPES = {"float", "int", "const", "restrict", "__global", "global", "__local", "local", "char", "void", "double",
           "unsigned", "long", "short", "uint", "float4", "float2", "float8", "size_t", "static", "inline", "__restrict",
           "return", "uchar", "ushort", "ulong", "bool", "__private", "private", "__constant", "constant"}
C_OPS = re.compile(r"<<=|>>=|<=|>=|==|!=|&&|\|\||\+=|-=|\*=|/=|\+\+|--|->|<<|>>|[-+*/<>!&|=?:;,(){}\[\]]")
C_NUMBER = re.compile(r"(?<![\w.])(\d+\.\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+|\d+)([fFuU]?)(?![\w.])")
C_SWAP = {"+": "-", "-": "+", "*": "/", "/": "*", "+=": "-=", "-=": "+=", "*=": "/=", "/=": "*=", "<": "<=", "<=": "<",
          ">": ">=", ">=": ">", "==": "!=", "!=": "==", "&&": "||", "||": "&&"}
C_DROP_CALLS = {"fabs", "fabsf", "fmax", "fmin", "fmaxf", "fminf", "max", "min", "sqrt", "sqrtf", "native_sqrt", "exp", "expf"}


def blank_c_noise(text):
    """Comments, string and character literals and preprocessor lines replaced by spaces (offsets kept)."""
    out = list(text)
    pattern = re.compile(r"/\*.*?\*/|//[^\n]*|\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*'|^[ \t]*#(?:[^\n]*\\\n)*[^\n]*", re.S | re.M)
    for m in pattern.finditer(text):
        for i in range(m.start(), m.end()):
            if out[i] != "\n":
                out[i] = " "
    return "".join(out)


def c_sites(path):
    """Token-level sites in a C or OpenCL C file."""
    raw = open(os.path.join(ROOT, path), encoding="utf-8").read()
    text = blank_c_noise(raw)
    tokens = []  # (start, end, text, kind)
    token = re.compile(r"[A-Za-z_]\w*|" + C_NUMBER.pattern + "|" + C_OPS.pattern)
    for m in token.finditer(text):
        t = m.group(0)
        kind = "id" if re.match(r"[A-Za-z_]", t) else "num" if re.match(r"[\d.]", t) else "op"
        tokens.append((m.start(), m.end(), t, kind))
    line_of = lambda offset: raw.count("\n", 0, offset) + 1
    sites = []

    def add(start, end, replacement, kind):
        original = raw[start:end]
        if replacement != original:
            sites.append({"file": path, "line": line_of(start), "start": len(raw[:start].encode()),
                          "end": len(raw[:end].encode()), "original": original, "replacement": replacement, "kind": kind})

    def value_like(tok):
        return tok is not None and (tok[3] == "num" or tok[2] in (")", "]") or (tok[3] == "id" and tok[2] not in C_TYPES
                                                                              and not tok[2].endswith("_t")))

    def matching(i):
        """The index of the ')' closing the '(' at tokens[i], and the top-level commas between."""
        depth, commas = 0, []
        for j in range(i, len(tokens)):
            t = tokens[j][2]
            if t in ("(", "[", "{"):
                depth += 1
            elif t in (")", "]", "}"):
                depth -= 1
                if depth == 0:
                    return j, commas
            elif t == "," and depth == 1:
                commas.append(j)
        return None, []

    for i, (start, end, t, kind) in enumerate(tokens):
        prev = tokens[i - 1] if i > 0 else None
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if kind == "op" and t in C_SWAP:
            binary = value_like(prev)
            if t in ("*", "/", "+", "-") and not binary:
                if t == "-" and nxt is not None and (nxt[3] in ("num", "id") or nxt[2] == "("):
                    add(start, end, "", "sign")
                continue
            if t == "*" and prev is not None and prev[3] == "id" and nxt is not None and nxt[2] in ("restrict", "__restrict", "const"):
                continue
            add(start, end, C_SWAP[t], "operator")
        elif kind == "num":
            m = C_NUMBER.fullmatch(t)
            if not m:
                continue
            digits, suffix = m.group(1), m.group(2)
            if re.fullmatch(r"\d+", digits):
                v = int(digits)
                add(start, end, f"{0 if v == 1 else v + 1}{suffix}", "constant")
            else:
                v = float(digits)
                add(start, end, f"{(0.1 if v == 0 else v * 1.5)!r}{suffix if suffix in 'fF' else ''}", "constant")
        elif kind == "id" and t in C_DROP_CALLS and nxt is not None and nxt[2] == "(":
            close, commas = matching(i + 1)
            if close is None:
                continue
            bounds = [i + 1] + commas + [close]
            args = [(tokens[bounds[k]][1], tokens[bounds[k + 1]][0]) for k in range(len(bounds) - 1)]
            if len(args) in (1, 2):
                for a, b in args:
                    add(start, tokens[close][1], "(" + raw[a:b].strip() + ")", "drop-call")
    return sites


PY_SWAP = {ast.Add: "-", ast.Sub: "+", ast.Mult: "/", ast.Div: "*", ast.FloorDiv: "/", ast.Lt: "<=", ast.LtE: "<",
           ast.Gt: ">=", ast.GtE: ">", ast.Eq: "!=", ast.NotEq: "==", ast.And: "or", ast.Or: "and", ast.Is: "is not",
           ast.IsNot: "is", ast.In: "not in", ast.NotIn: "in"}


def python_sites(path):
    raw = open(os.path.join(ROOT, path), encoding="utf-8").read()
    data = raw.encode()
    line_starts = [0]
    for line in data.split(b"\n"):
        line_starts.append(line_starts[-1] + len(line) + 1)
    off = lambda lineno, col: line_starts[lineno - 1] + col
    sites = []
    tree = ast.parse(raw)
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)) and n.body
                  and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}

    def add(start, end, replacement, kind):
        original = data[start:end].decode()
        if replacement != original:
            sites.append({"file": path, "line": data.count(b"\n", 0, start) + 1, "start": start, "end": end,
                          "original": original, "replacement": replacement, "kind": kind})

    def span(node):
        return off(node.lineno, node.col_offset), off(node.end_lineno, node.end_col_offset)

    def op_between(a_end, b_start, text):
        segment = data[a_end:b_start].decode()
        at = segment.find(text)
        return (a_end + len(segment[:at].encode()), a_end + len(segment[:at].encode()) + len(text.encode())) if at >= 0 else None

    symbols = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Lt: "<", ast.LtE: "<=",
               ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=", ast.And: "and", ast.Or: "or", ast.Is: "is",
               ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in"}
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and type(node.op) in PY_SWAP:
            at = op_between(span(node.left)[1], span(node.right)[0], symbols[type(node.op)])
            if at:
                add(*at, PY_SWAP[type(node.op)], "operator")
        elif isinstance(node, ast.Compare):
            left = node.left
            for op, right in zip(node.ops, node.comparators):
                if type(op) in PY_SWAP:
                    at = op_between(span(left)[1], span(right)[0], symbols[type(op)])
                    if at:
                        add(*at, PY_SWAP[type(op)], "operator")
                left = right
        elif isinstance(node, ast.BoolOp):
            s, e = span(node)
            for v in node.values:
                vs, ve = span(v)
                add(s, e, "(" + data[vs:ve].decode() + ")" if len(node.values) == 2 else data[s:e].decode().replace(
                    data[vs:ve].decode(), "True" if isinstance(node.op, ast.And) else "False", 1), "drop-term")
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Not)):
            s, e = span(node)
            os_, oe = span(node.operand)
            add(s, e, data[os_:oe].decode(), "sign" if isinstance(node.op, ast.USub) else "negation")
        elif isinstance(node, ast.Constant) and id(node) not in docstrings and type(node.value) in (int, float):
            s, e = span(node)
            v = node.value
            add(s, e, repr(0 if v == 1 else v + 1) if isinstance(v, int) else repr(0.1 if v == 0 else v * 1.5), "constant")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("abs", "max", "min") \
                and 1 <= len(node.args) <= 2 and not node.keywords:
            s, e = span(node)
            for a in node.args:
                a_s, a_e = span(a)
                add(s, e, "(" + data[a_s:a_e].decode() + ")", "drop-call")
        elif isinstance(node, (ast.Expr, ast.AugAssign)) and not (isinstance(node, ast.Expr) and not isinstance(node.value, ast.Call)):
            s, e = span(node)
            add(s, e, "pass", "remove-statement")
    return sites


def all_sites(paths):
    sites = swift_sites([p for p in paths if p.endswith(".swift")])
    for p in paths:
        if p.endswith((".c", ".cl")):
            sites += c_sites(p)
        elif p.endswith(".py"):
            sites += python_sites(p)
    for s in sites:
        s["file"] = os.path.relpath(os.path.join(ROOT, s["file"]), ROOT)
    # A stable id: the file, the kind, the edit and the line's text (not its number), with a count
    # for identical lines, so unrelated edits elsewhere in the file leave the id alone.
    seen = {}
    texts = {}
    for s in sites:
        # A file moved after a sample was drawn keeps its mutants' ids (the key names its old path).
        path_key = MOVED.get(s["file"], s["file"])
        if s["file"] not in texts:
            texts[s["file"]] = open(os.path.join(ROOT, s["file"]), encoding="utf-8").read().split("\n")
        line_text = texts[s["file"]][s["line"] - 1].strip()
        key = (path_key, s["kind"], s["original"], s["replacement"], line_text)
        seen[key] = seen.get(key, 0) + 1
        digest = hashlib.sha1(repr(key + (seen[key],)).encode()).hexdigest()[:10]
        s["id"] = f"{os.path.basename(s['file'])}:{digest}"
        s["source"] = line_text
    return sites


# ---------------------------------------------------------------------------------------------
# Running.

def test_order(tests, baseline):
    return sorted(tests, key=lambda t: baseline.get(t, 1e9))


def test_command(test):
    if test == "C":
        return ["bash", "Tests/C/run.sh", ".build/release"]
    if test.startswith("py:"):
        return [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", test[3:]]
    return mutate.TEST + ["--filter", f"\\.{test}$" if "/" in test else f"\\.{test}/"]


def test_env():
    return dict(os.environ, CI="true", XAI_LIBRARY=os.path.join(mutate.TREE, ".build", "release", "libxaic.so"),
                XAI_CLI=os.path.join(mutate.TREE, ".build", "release", "xai"))


def run_test(test, timeout, log):
    started = time.time()
    try:
        with open(log, "a") as f:
            f.write(f"\n=== {test}\n")
            f.flush()
            code = subprocess.run(test_command(test), cwd=mutate.TREE, env=test_env(), stdout=f, stderr=subprocess.STDOUT,
                                  timeout=timeout).returncode
        return ("passed" if code == 0 else "failed"), time.time() - started
    except subprocess.TimeoutExpired:
        return "timeout", time.time() - started


def build(log, products):
    if mutate.run(mutate.BUILD, mutate.TREE, log) != 0:
        return False
    return not products or mutate.run(PRODUCTS, mutate.TREE, log + ".products") == 0


def file_digest(path):
    return hashlib.sha1(open(os.path.join(ROOT, path), "rb").read()).hexdigest()[:12]


def load_triage():
    if not os.path.exists(TRIAGE):
        return {}
    return {e["id"]: e for e in json.load(open(TRIAGE)) if isinstance(e, dict) and "id" in e}


def summarize(chosen, results, triage, out=sys.stdout, gone=()):
    before = [results[s["id"]].get("before", results[s["id"]]["status"]) for s in chosen if s["id"] in results]
    first_killed = sum(b in ("killed", "timeout") for b in before)
    first_scored = first_killed + sum(b == "survived" for b in before)
    if first_scored and any("before" in results.get(s["id"], {}) for s in chosen):
        print(f"first run: {first_killed} of {first_scored} killed ({100.0 * first_killed / first_scored:.1f} %, before triage)", file=out)
    counts = {}
    survivors = []
    for s in chosen:
        r = results.get(s["id"])
        status = r["status"] if r else "not run"
        if status == "survived" and triage.get(s["id"], {}).get("verdict") == "equivalent":
            status = "equivalent"
        counts[status] = counts.get(status, 0) + 1
        if status in ("survived", "equivalent"):
            survivors.append((s, status, triage.get(s["id"])))
    killed = counts.get("killed", 0) + counts.get("timeout", 0)
    survived = counts.get("survived", 0)
    scored = killed + survived
    print("\n" + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())), file=out)
    for g in gone:
        first = results.get(g, {}).get("status", "not run")
        print(f"  gone       {g:28} its code was replaced since it was sampled (first run: {first})", file=out)
    if scored:
        print(f"score: {killed} of {scored} non-equivalent mutants killed ({100.0 * killed / scored:.1f} %)", file=out)
    for s, status, t in survivors:
        why = ((t or {}).get("verdict", "") + ": " + ((t or {}).get("reason") or (t or {}).get("test") or "")) if t else "untriaged"
        print(f"  {status:10} {s['id']:28} {s['file']}:{s['line']} [{s['kind']}] "
              f"{s['original']!r} -> {s['replacement']!r}  ({why})", file=out)
    return killed, scored


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check-map", action="store_true", help="check the file-to-tests map and exit")
    ap.add_argument("--sample", type=int, default=200, help="how many mutants to sample (default 200)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--changed", metavar="REV", help="sample only from the files changed since REV (git diff --name-only)")
    ap.add_argument("--files", nargs="*", help="sample only from these files")
    ap.add_argument("--list", action="store_true", help="print the sample and exit")
    ap.add_argument("--resample", action="store_true", help="draw the sample anew instead of reusing the one kept for this seed and size")
    ap.add_argument("--count", action="store_true", help="print the number of sites per kind and file and exit")
    ap.add_argument("--report", action="store_true", help="summarize the stored results for the sample and exit")
    ap.add_argument("--rerun", action="store_true", help="run the sample's mutants again even where a result is stored")
    ap.add_argument("--rebuild", action="store_true",
                    help="recompile every Swift file of the tree first (after a change to a type's stored properties, whose "
                         "dependents an incremental build may not recompile)")
    ap.add_argument("--rerun-survivors", action="store_true",
                    help="run the sample's survivors again (after tests were added: the 'after' of a before/after score)")
    args = ap.parse_args()

    problems = check_map()
    if args.check_map:
        for p in problems:
            print(p)
        print(f"{len(mutable_files())} mutable files; map {'OK' if not problems else 'has ' + str(len(problems)) + ' problems'}")
        sys.exit(1 if problems else 0)
    if problems:
        sys.exit("the file-to-tests map has problems (run --check-map)")

    entries = load_map()
    files = [p for p in mutable_files() if isinstance(entries[entry_for(p, entries)], list)]
    if args.changed:
        changed = subprocess.run(["git", "diff", "--name-only", args.changed], cwd=ROOT, capture_output=True, text=True,
                                 check=True).stdout.split()
        files = [p for p in files if p in changed]
    if args.files:
        files = [p for p in files if p in args.files or any(p.startswith(f.rstrip("/") + "/") for f in args.files)]
    sites = all_sites(files)
    if args.count:
        by = {}
        for s in sites:
            by[s["kind"]] = by.get(s["kind"], 0) + 1
        print(f"{len(sites)} sites in {len(files)} files: " + ", ".join(f"{k} {v}" for k, v in sorted(by.items())))
        return
    sites.sort(key=lambda s: s["id"])
    # The whole tree's sample is kept (by mutant id), so that the score after the survivors' tests
    # is measured on the same mutants even when a fix changed the sources in between.
    os.makedirs(OUT, exist_ok=True)
    os.makedirs(KEPT, exist_ok=True)
    kept = None if args.changed or args.files else os.path.join(KEPT, f"sample-seed{args.seed}-n{args.sample}.json")
    gone = []
    if kept and os.path.exists(kept) and not args.resample:
        by_id = {s["id"]: s for s in sites}
        ids = json.load(open(kept))
        chosen = [by_id[i] for i in ids if i in by_id]
        gone = [i for i in ids if i not in by_id]
        if gone:
            print(f"{len(gone)} sampled mutants no longer exist (their lines changed): {', '.join(gone)}")
    else:
        chosen = random.Random(args.seed).sample(sites, min(args.sample, len(sites)))
        if kept:
            json.dump([s["id"] for s in chosen], open(kept, "w"), indent=0)
    # Run in file order: consecutive mutants of one module rebuild only it.
    chosen.sort(key=lambda s: (s["file"], s["start"]))
    for s in chosen:
        s["tests"] = entries[entry_for(s["file"], entries)]
        s["digest"] = file_digest(s["file"])
    results = json.load(open(RESULTS)) if os.path.exists(RESULTS) else {}
    triage = load_triage()
    if args.list:
        for s in chosen:
            print(f"{s['id']:28} {s['file']}:{s['line']} [{s['kind']}] {s['original']!r} -> {s['replacement']!r}")
        return
    if args.report:
        summarize(chosen, results, triage, gone=gone)
        return

    if args.rerun_survivors:
        # Only the first run's survivors not triaged as equivalent, whatever else changed or is still to run.
        todo = [s for s in chosen if results.get(s["id"], {}).get("status") == "survived"
                and triage.get(s["id"], {}).get("verdict") != "equivalent"]
    else:
        todo = [s for s in chosen if args.rerun or results.get(s["id"], {}).get("digest") != s["digest"]]
    if args.rerun_survivors:
        # Keep the first run's outcome beside the new one: the score before the survivors' tests.
        for s in todo:
            if s["id"] in results and "before" not in results[s["id"]]:
                results[s["id"]]["before"] = results[s["id"]]["status"]
    print(f"{len(chosen)} mutants sampled (seed {args.seed}) from {len(sites)} sites in {len(files)} files; "
          f"{len(todo)} to run", flush=True)
    if not todo:
        summarize(chosen, results, triage)
        return
    mutate.copy_tree()
    if args.rebuild:
        now = time.time()
        for folder in ("Sources", "Tests"):
            for dirpath, _, names in os.walk(os.path.join(mutate.TREE, folder)):
                for name in names:
                    if name.endswith(".swift"):
                        os.utime(os.path.join(dirpath, name), (now, now))
    print(f"building the unmutated tree in {mutate.TREE} ...", flush=True)
    if not build(os.path.join(OUT, "build.log"), products=True):
        sys.exit(f"the unmutated tree does not build: {OUT}/build.log")
    baseline = {}
    for t in sorted({t for s in todo for t in s["tests"]}):
        status, seconds = run_test(t, None, os.path.join(OUT, "baseline.log"))
        if status != "passed":
            sys.exit(f"test '{t}' fails without any mutant ({OUT}/baseline.log); if it passes in the working tree, the "
                     f"tree's incremental build may be stale: run again with --rebuild")
        baseline[t] = seconds
    print("unmutated test times: " + ", ".join(f"{t} {v:.0f} s" for t, v in sorted(baseline.items(), key=lambda x: x[1])), flush=True)

    for n, s in enumerate(todo, 1):
        while os.path.exists(PAUSE):
            time.sleep(10)
        target = os.path.join(mutate.TREE, s["file"])
        original = open(target, "rb").read()
        if original[s["start"]:s["end"]].decode() != s["original"]:
            results[s["id"]] = {"status": "stale", "digest": s["digest"]}
            continue
        open(target, "wb").write(original[:s["start"]] + s["replacement"].encode() + original[s["end"]:])
        log = os.path.join(OUT, s["id"].replace(":", "_") + ".log")
        open(log, "w").close()
        started = time.time()
        killer = None
        try:
            needs_products = any(t == "C" or t.startswith("py:") for t in s["tests"])
            if s["file"].endswith(".py"):
                status = "survived"
            elif not build(log, needs_products):
                status = "invalid"
            else:
                status = "survived"
            if status == "survived":
                for t in test_order(s["tests"], baseline):
                    outcome, _ = run_test(t, 3 * baseline[t] + 30, log)
                    if outcome != "passed":
                        status, killer = ("killed" if outcome == "failed" else "timeout"), t
                        break
        finally:
            open(target, "wb").write(original)
        results[s["id"]] = {**({"before": results[s["id"]]["before"]} if "before" in results.get(s["id"], {}) else {}),
                            "status": status, "by": killer, "digest": s["digest"], "seconds": round(time.time() - started),
                            "file": s["file"], "line": s["line"], "kind": s["kind"], "original": s["original"],
                            "replacement": s["replacement"]}
        json.dump(results, open(RESULTS + ".tmp", "w"), indent=1, sort_keys=True)
        os.replace(RESULTS + ".tmp", RESULTS)
        print(f"[{n}/{len(todo)}] {s['id']:28} {status:9} {s['file']}:{s['line']} [{s['kind']}] "
              f"{s['original'][:40]!r} -> {s['replacement'][:40]!r}"
              f"{' by ' + killer if killer else ''} ({round(time.time() - started)} s)", flush=True)
    build(os.path.join(OUT, "build.log"), products=True)
    with open(os.path.join(OUT, "report.txt"), "w") as f:
        summarize(chosen, results, triage, f, gone=gone)
    summarize(chosen, results, triage, gone=gone)


if __name__ == "__main__":
    main()
