"""The package's shape, checked: no import cycles, own imports at the top of each file.

These read the source with ``ast`` (nothing is imported), so they are fast and
name the file and line that breaks a rule.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "oumi_jobs"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(tree: ast.AST, top_level: bool = True) -> Iterator[tuple[ast.stmt, bool]]:
    """Every import statement, with whether it sits at the module's top level.

    Those under ``if TYPE_CHECKING:`` count: they never run, but a module that
    needs another's types to be read depends on it as much as one that runs it.
    """
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, top_level
        else:
            nested = top_level and isinstance(node, (ast.If, ast.Try))
            yield from _imports(node, top_level=nested)


def _targets(node: ast.stmt, current: str) -> Iterator[str]:
    """The oumi_jobs modules an import statement loads (a package's own ``__init__`` aside: it is loaded first)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        assert isinstance(node, ast.ImportFrom)
        base = node.module or ""
        if node.level:
            base = ".".join(current.split(".")[: -node.level] + ([base] if base else []))
        # `from pkg import mod` loads pkg.mod; `from mod import name` loads mod
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
    for name in names:
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name and name != current and not current.startswith(name + "."):
            yield name


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        graph[name] = {target for node, _ in _imports(tree) for target in _targets(node, name)}
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_package_has_no_import_cycle() -> None:
    cycle = _find_cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_one() -> None:
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


# The launcher and what it pulls in: 10-15 s of imports, and types that must not leak past the seam.
LAUNCHER_PACKAGES = {"oumi", "sky"}
# The in-process adapter, split by concern: the calls, the lazy import with its log routing, the config and
# credentials checks.  Each needs oumi or sky itself; every other module reaches them through the seam.
IN_PROCESS_ADAPTER = {"oumi_jobs.cloud.oumi_adapter", "oumi_jobs.cloud.oumi_loading", "oumi_jobs.cloud.oumi_checks"}


def _launcher_imports(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Every import of oumi or sky anywhere in a file: top level, in functions, under TYPE_CHECKING, by name."""
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                names = [node.args[0].value]
        for name in names:
            if name.split(".")[0] in LAUNCHER_PACKAGES:
                yield node.lineno, name


def test_only_the_in_process_cloud_adapter_imports_oumi_or_sky() -> None:
    found = {
        name: [f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}" for line, module in imports]
        for name, path in MODULES.items()
        if (imports := list(_launcher_imports(ast.parse(path.read_text(), str(path)))))
    }
    assert set(found) >= IN_PROCESS_ADAPTER, "the check is blind: the adapter's own oumi imports were not seen"
    offenders = [line for name, lines in found.items() if name not in IN_PROCESS_ADAPTER for line in lines]
    assert offenders == []


def test_the_launcher_import_check_sees_every_form() -> None:
    source = (
        "import oumi.launcher\nfrom sky import jobs\nfrom .oumi import x\nimport oumi_jobs.jobs\n"
        "def f():\n    import importlib\n    importlib.import_module('oumi.core')\n    __import__('sky')\n"
    )
    assert [module for _, module in _launcher_imports(ast.parse(source))] == [
        "oumi.launcher", "sky", "oumi.core", "sky"
    ]  # fmt: skip


LAZY_REASON = "# lazy import:"


def _unexplained_lazy_imports(name: str, source: str, where: str) -> list[str]:
    """Our own modules imported inside a function, without ``# lazy import: why`` on the line above."""
    lines = source.splitlines()
    found = []
    for node, top_level in _imports(ast.parse(source, where)):
        above = node.lineno - 2  # the reason may head a block of imports, and run over several lines
        while above >= 0 and lines[above].strip().startswith(("from ", "import ", "#")):
            if lines[above].strip().startswith(LAZY_REASON):
                break
            above -= 1
        explained = above >= 0 and lines[above].strip().startswith(LAZY_REASON)
        if not top_level and not explained and any(_targets(node, name)):
            found.append(f"{where}:{node.lineno}")
    return found


def test_own_modules_are_imported_at_the_top_of_each_file() -> None:
    """Lazy imports are for heavy third-party packages (rich, yaml, psutil, oumi...), not our own; the
    exception, with its reason written above it, is a path kept lean (``list --json``: tests/test_listing.py
    checks what it imports)."""
    offenders = []
    for name, path in MODULES.items():
        offenders += _unexplained_lazy_imports(name, path.read_text(), str(path.relative_to(PACKAGE.parent)))
    assert offenders == [], f"import them at the top, or write '{LAZY_REASON} why' just above"


def test_the_lazy_import_check_reads_the_reason() -> None:
    body = "def f():\n    {reason}\n    from oumi_jobs import paths\n"
    assert _unexplained_lazy_imports("oumi_jobs.x", body.format(reason="pass"), "m.py") == ["m.py:3"]
    assert _unexplained_lazy_imports("oumi_jobs.x", body.format(reason=LAZY_REASON + " lean"), "m.py") == []
    assert _unexplained_lazy_imports("oumi_jobs.x", "def f():\n    import json\n", "m.py") == []
    block = f"def f():\n    {LAZY_REASON} lean\n    from oumi_jobs import a\n    from oumi_jobs import b\n"
    assert _unexplained_lazy_imports("oumi_jobs.x", block, "m.py") == []


# SQL as it is written: a statement's first words, in capitals (prose says "select", "update").
_SQL = re.compile(
    r"\b(SELECT\b.+\bFROM|INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|"
    r"(CREATE|DROP|ALTER)\s+(TABLE|INDEX)|PRAGMA\s+\w+|BEGIN\s+(IMMEDIATE|EXCLUSIVE|DEFERRED)|ROLLBACK|COMMIT)\b",
    re.DOTALL,
)
STORE = "oumi_jobs.store"
_RUNS_SQL = {"execute", "executemany", "executescript", "_execute", "_transaction"}


def _string_texts(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Every string literal, an f-string's pieces joined around ``?`` (SQL is often built with one)."""
    pieces: set[int] = set()  # an f-string's constant pieces, read with the f-string
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            pieces.update(id(v) for v in node.values)
            yield node.lineno, "".join(str(v.value) if isinstance(v, ast.Constant) else "?" for v in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in pieces:
            yield node.lineno, node.value


def _sql_offences(source: str, where: str) -> list[str]:
    """SQL in ``source``: SQL text in a string, a call that runs SQL, or sqlite3 imported."""
    offences = []
    tree = ast.parse(source, where)
    for lineno, text in _string_texts(tree):
        if _SQL.search(text):
            offences.append(f"{where}:{lineno}: SQL in a string")
    for node in ast.walk(tree):
        # The store's own plumbing (Registry._execute, ._transaction) counts too.
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _RUNS_SQL:
            offences.append(f"{where}:{node.lineno}: .{node.func.attr}(")
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            if "sqlite3" in names:
                offences.append(f"{where}:{node.lineno}: imports sqlite3")
    return offences


def test_only_the_store_contains_sql() -> None:
    """One owner of the database: every statement lives in oumi_jobs/store/, behind a named operation."""
    offenders = []
    for name, path in MODULES.items():
        if name == STORE or name.startswith(STORE + "."):
            continue
        offenders += _sql_offences(path.read_text(), str(path.relative_to(PACKAGE.parent)))
    assert offenders == []


def test_the_sql_finder_finds_sql() -> None:
    found = _sql_offences(
        'import sqlite3\nq = "SELECT a\\n FROM t"\nf"UPDATE jobs SET {x} = 1"\nregistry.execute("x")\n'
        'f"INSERT OR IGNORE INTO jobs ({c})"\n"PRAGMA journal_mode"\n',
        "m.py",
    )
    assert sorted(found) == [
        "m.py:1: imports sqlite3",
        "m.py:2: SQL in a string",
        "m.py:3: SQL in a string",
        "m.py:4: .execute(",
        "m.py:5: SQL in a string",
        "m.py:6: SQL in a string",
    ]
    assert _sql_offences('"""Select a job, then update its record and delete the rest."""\n', "m.py") == []


# A whole function (decorators, signature and docstring included: a Typer
# command's options are code to read too) longer than this needs a reason
# written just above it.
MAX_FUNCTION_LINES = 60
LONG_REASON = "# long function:"


def _long_functions(sources: dict[str, str]) -> list[str]:
    """``where: name (lines)`` for each function of ``sources`` (path -> text) over the limit without a reason."""
    found = []
    for where, source in sources.items():
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source, where)):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            length = (node.end_lineno or node.lineno) - first + 1
            explained = any(LONG_REASON in line for line in lines[max(0, first - 3) : first - 1])
            if length > MAX_FUNCTION_LINES and not explained:
                found.append(f"{where}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_function_is_long_without_a_reason() -> None:
    sources = {str(path.relative_to(PACKAGE.parent)): path.read_text() for path in MODULES.values()}
    assert _long_functions(sources) == [], f"split them, or write '{LONG_REASON} why' just above the def"


def test_the_length_check_counts_the_signature_and_reads_the_reason() -> None:
    params = "".join(f"    a{i}: int = 0,\n" for i in range(58))
    long_signature = f"@decorated\ndef f(\n{params}) -> None:\n    pass\n"  # 62 lines, a body of one
    assert _long_functions({"m.py": long_signature}) == ["m.py:2 f (62 lines)"]
    assert _long_functions({"m.py": LONG_REASON + " it reads best whole\n" + long_signature}) == []
    assert _long_functions({"m.py": "def g():\n" + "    x = 1\n" * 59}) == []  # exactly 60


# The front ends (the command line, the library facade, the REST server's endpoints, the dashboard's pages, the webhook
# sender) and the layer that renders for them; everything else is the core.
FRONTS = (
    "oumi_jobs.cli", "oumi_jobs.render", "oumi_jobs.api", "oumi_jobs.__main__", "oumi_jobs.server.app",
    "oumi_jobs.server.rest", "oumi_jobs.server.rest_sweeps", "oumi_jobs.dashboard.pages", "oumi_jobs.dashboard.data",
    # The notification sender renders the event document a webhook receives.
    "oumi_jobs.notify.sender",
)  # fmt: skip
RENDERING = ("oumi_jobs.render", "oumi_jobs.cli")


def _within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def _core_imports_of_rendering(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{name} imports {target}"
        for name, targets in graph.items()
        if not _within(name, FRONTS)
        for target in targets
        if _within(target, RENDERING)
    )


def test_the_core_imports_neither_the_rendering_layer_nor_the_cli() -> None:
    """Results are rendered above the core: a core module that needed a document or the CLI would loop back."""
    graph = _graph()
    assert any(_within(name, ("oumi_jobs.render",)) for name in graph), "the check is blind: no rendering layer"
    assert _core_imports_of_rendering(graph) == []


def test_the_rendering_rule_sees_a_core_module_that_renders() -> None:
    graph = {"oumi_jobs.clusters": {"oumi_jobs.render.clusters"}, "oumi_jobs.cli.app": {"oumi_jobs.clusters"},
             "oumi_jobs.render.clusters": {"oumi_jobs.clusters"}, "oumi_jobs.waiting": {"oumi_jobs.cli.live"}}  # fmt: skip
    assert _core_imports_of_rendering(graph) == [
        "oumi_jobs.clusters imports oumi_jobs.render.clusters",
        "oumi_jobs.waiting imports oumi_jobs.cli.live",
    ]


def test_type_checking_imports_count_as_dependencies() -> None:
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from oumi_jobs.submitting import DryRun\n"
    targets = {t for node, _ in _imports(ast.parse(source)) for t in _targets(node, "oumi_jobs.render.jobs")}
    assert targets == {"oumi_jobs.submitting"}


def _type_checking_blocks(tree: ast.AST) -> list[int]:
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
    ]  # fmt: skip


def test_the_rendering_layer_imports_what_it_renders_at_run_time() -> None:
    """No TYPE_CHECKING hub: a document's module says plainly which results it is built from."""
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{line}"
        for name, path in MODULES.items()
        if _within(name, ("oumi_jobs.render",))
        for line in _type_checking_blocks(ast.parse(path.read_text(), str(path)))
    ]
    assert offenders == []
    assert _type_checking_blocks(ast.parse("import typing\nif typing.TYPE_CHECKING:\n    import x\n")) == [2]


def test_the_cli_package_imports_nothing_of_its_own() -> None:
    """Importing one of its modules (the root, the output sink) must not load every command first."""
    init = MODULES["oumi_jobs.cli"]
    assert [node.lineno for node, _ in _imports(ast.parse(init.read_text()))] == []
