"""Run mutmut over one scope and print its mutation score (scopes A and A' of ``make mutate``).

* ``core``: the pure rules in ``actors/``, as configured by ``[tool.mutmut]`` in
  pyproject.toml; runs in the repository (``mutants/``), so ``mutmut browse`` / ``mutmut
  show`` work on its results afterwards. Fails below ``--min-score`` (85 by default).
* ``services``: ``app/services/`` against the Redis-backed API tests. Runs in a copy of the
  tree under ``var/mutation/services`` with the overrides in ``SERVICES`` below; reported,
  not gated (``--min-score 0``) unless asked.

Every mutant that was not killed is listed as ``file:line`` with its change; those listed
in ``mutation/equivalent.py`` are marked with the reason they cannot be killed. The score is
killed / all mutants, where a mutant whose tests ran past mutmut's timeout (an endless loop)
counts as killed; equivalent ones count as not killed.

    python -m mutation.run core -j 2           # fresh run (mutants/ is removed first)
    python -m mutation.run core --keep         # reuse mutants/: only changed code reruns
    python -m mutation.run core --report-only  # the score of the last run
    python -m mutation.run services -j 2
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mutation.equivalent import EQUIVALENT, Equivalent

ROOT = Path(__file__).resolve().parent.parent
SPINNER = tuple("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏")  # mutmut's progress lines; only the last one is printed
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped"}
STATUS.update(dict.fromkeys((36, 24, -24, 152, 255), "timeout"))
STATUS.update(dict.fromkeys((-11, -9), "segfault"))
DETECTED = ("killed", "timeout")

#: Scope A': the service layer, scored by the API tests (each runs against the test Redis).
#: A subset, for runtime: the security-critical services (bearer, passwords and lockout,
#: session commands and reads), scored by the tests that drive them.
SERVICES: dict[str, object] = {
    "source_paths": ["app/"],
    "only_mutate": [
        "app/services/auth.py",
        "app/services/passwords.py",
        "app/services/sessions.py",
        "app/services/session_reads.py",
        "app/services/session_list.py",
    ],
    "also_copy": ["actors/", "storage/", "mutation/"],
    # A mutant that breaks a test midway leaves connections unclosed; with filterwarnings=error
    # their warnings at exit would escape pytest.main as an exception and stop mutmut.
    "pytest_add_cli_args": [
        "-p",
        "no:cacheprovider",
        "-p",
        "mutation.plugin",
        "--no-header",
        "-W",
        "ignore::pytest.PytestUnraisableExceptionWarning",
    ],
    "pytest_add_cli_args_test_selection": [
        "tests/test_sessions_api.py",
        "tests/test_password_lockout.py",
        "tests/test_rate_limits.py",
        "tests/test_admin_token.py",
        "tests/test_bearer_rules.py",
    ],
    "use_git_change_detection": False,
}
SERVICES_DIR = ROOT / "var" / "mutation" / "services"
STAGED = ("app", "actors", "storage", "tests", "mutation", "pyproject.toml")


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str
    status: str
    line: int = 0
    before: str = ""
    after: str = ""
    equivalent: Equivalent | None = None

    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"unsupported TOML value: {value!r}")


def _without_mutmut_table(text: str) -> str:
    kept: list[str] = []
    inside = False
    for line in text.splitlines():
        if line.startswith("["):
            inside = line.strip() == "[tool.mutmut]"
        if not inside:
            kept.append(line)
    return "\n".join(kept) + "\n"


def stage_services() -> Path:
    """A copy of the tree whose [tool.mutmut] is ``SERVICES``; mutmut runs there."""
    if SERVICES_DIR.exists():
        shutil.rmtree(SERVICES_DIR)
    SERVICES_DIR.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", ".hypothesis")
    for name in STAGED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, SERVICES_DIR / name, ignore=ignore)
        else:
            shutil.copy2(source, SERVICES_DIR / name)
    pyproject = SERVICES_DIR / "pyproject.toml"
    table = "\n".join(f"{key} = {_toml_value(value)}" for key, value in SERVICES.items())
    text = _without_mutmut_table(pyproject.read_text(encoding="utf-8"))
    pyproject.write_text(f"{text}\n[tool.mutmut]\n{table}\n", encoding="utf-8")
    return SERVICES_DIR


def run_mutmut(workdir: Path, jobs: int) -> int:
    env = dict(os.environ)
    env.setdefault("SESSIOND_TEST_REDIS", "valkey")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    mutmut = Path(sys.executable).with_name("mutmut")
    command = [str(mutmut), "run", "--max-children", str(jobs)]
    print(f"== {' '.join(command)}  (in {workdir})", flush=True)
    # mutmut's progress line redraws itself with \r: keep only its last state per line.
    proc = subprocess.run(
        command, cwd=workdir, env=env, capture_output=True, text=True, check=False
    )
    progress = ""
    for line in (proc.stdout + proc.stderr).splitlines():
        line = line.rsplit("\r", 1)[-1]
        if line.startswith(SPINNER):
            progress = line
        else:
            print(line)
    if progress:
        print(progress)
    return proc.returncode


def _function_start(source: str, name: str, class_name: str | None) -> int:
    """First line (decorators included) of the function ``name`` (in ``class_name``)."""
    tree = ast.parse(source)
    scopes: list[ast.AST] = [tree]
    if class_name is not None:
        scopes = [
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.ClassDef) and node.name == class_name
        ]
    for scope in scopes:
        for node in ast.iter_child_nodes(scope):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
                return min([node.lineno, *(d.lineno for d in node.decorator_list)])
    return 0


def _first_change(diff: str) -> tuple[int, str, str]:
    """(line offset within the function, 0-based; the original line; the mutated line)."""
    offset, before, after, seen_minus = -1, "", "", False
    for line in diff.splitlines():
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("@@"):
            start = line.split()[1]  # -a,b
            offset = int(start[1:].split(",")[0]) - 2
            continue
        if line.startswith("-"):
            if not seen_minus:
                offset += 1
                before = line[1:]
                seen_minus = True
            continue
        if line.startswith("+"):
            after = after or line[1:]
            if not seen_minus:
                offset += 1  # an added line: point at the line it precedes
                seen_minus = True
            continue
        if not seen_minus:
            offset += 1
    return offset, before.strip(), after.strip()


def collect(workdir: Path) -> list[Mutant]:
    """Every mutant of the last run in ``workdir``, with file:line for those not killed."""
    os.chdir(workdir)  # mutmut reads its config and mutants/ relative to the cwd
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.utils.format_utils import orig_function_and_class_names_from_key

    config = tomllib.loads((workdir / "pyproject.toml").read_text(encoding="utf-8"))
    files = config["tool"]["mutmut"].get("only_mutate", [])
    mutants: list[Mutant] = []
    for file in files:
        meta = workdir / "mutants" / f"{file}.meta"
        if not meta.exists():
            continue
        source = (workdir / file).read_text(encoding="utf-8")
        codes = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
        for name, code in sorted(codes.items()):
            status = STATUS.get(code, "not checked" if code is None else "suspicious")
            if status in DETECTED:
                mutants.append(Mutant(name, file, status))
                continue
            function, class_name = orig_function_and_class_names_from_key(name)
            start = _function_start(source, function, class_name)
            offset, before, after = _first_change(get_diff_for_mutant(name, path=file))
            line = start + offset if start else 0
            mutant = Mutant(name, file, status, line, before, after)
            mutants.append(Mutant(**{**mutant.__dict__, "equivalent": _equivalent(mutant)}))
    os.chdir(ROOT)
    return mutants


def _equivalent(mutant: Mutant) -> Equivalent | None:
    for known in EQUIVALENT:
        if (
            known.file == mutant.file
            and known.before == mutant.before
            and known.after == mutant.after
        ):
            return known
    return None


def report(mutants: Sequence[Mutant], label: str) -> float:
    counts = Counter(m.status for m in mutants)
    total = len(mutants)
    killed = counts["killed"] + counts["timeout"]
    score = 100.0 * killed / total if total else 0.0
    print(f"\n== {label}: not killed, by file:line")
    equivalent = 0
    missed = [m for m in mutants if m.status not in DETECTED]
    for m in sorted(missed, key=lambda m: (m.file, m.line)):
        mark = ""
        if m.equivalent is not None:
            equivalent += 1
            mark = f"  [equivalent: {m.equivalent.reason}]"
        print(f"{m.where():<34} {m.status:<9} {m.before}  =>  {m.after}{mark}")
    print(f"\n== {label}: per file (killed / mutants)")
    for file in sorted({m.file for m in mutants}):
        mine = [m for m in mutants if m.file == file]
        done = sum(m.status in DETECTED for m in mine)
        print(f"{file:<34} {done:>4} / {len(mine):<4} {100.0 * done / len(mine):5.1f}%")
    summary = ", ".join(f"{n} {status}" for status, n in counts.most_common())
    print(f"\n{label} mutation score: {killed}/{total} killed = {score:.1f}%  ({summary})")
    if equivalent:
        print(
            f"{label}: {equivalent} of the {total - killed} not killed are known equivalent "
            f"(mutation/equivalent.py); killed or equivalent = "
            f"{100.0 * (killed + equivalent) / total:.1f}%"
        )
    return score


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scope", choices=("core", "services"))
    parser.add_argument("-j", "--jobs", type=int, default=2, help="mutmut workers (default 2)")
    parser.add_argument("--min-score", type=float, default=None, help="fail below (percent)")
    parser.add_argument("--keep", action="store_true", help="reuse the previous mutants/")
    parser.add_argument("--report-only", action="store_true", help="do not run mutmut")
    args = parser.parse_args(argv)
    min_score = args.min_score
    if min_score is None:
        min_score = 85.0 if args.scope == "core" else 0.0

    start = time.monotonic()
    if args.scope == "core":
        workdir = ROOT
        if not args.report_only and not args.keep:
            shutil.rmtree(ROOT / "mutants", ignore_errors=True)
    elif args.report_only:
        workdir = SERVICES_DIR
    else:
        workdir = stage_services()
    if not args.report_only:
        code = run_mutmut(workdir, args.jobs)
        if code != 0:
            print(f"mutmut failed (exit {code})")
            return 1
    mutants = collect(workdir)
    if not mutants:
        print(f"no mutation results in {workdir / 'mutants'}")
        return 1
    score = report(mutants, args.scope)
    print(f"{args.scope}: {time.monotonic() - start:.0f}s")
    if score < min_score:
        print(f"{args.scope}: FAILED: mutation score {score:.1f}% is below {min_score:.0f}%")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
