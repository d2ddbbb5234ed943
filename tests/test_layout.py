"""The package's shape: its wings are packages, imports between its own modules run one way (no circle) and only
down its floors (`ruff` keeps every line within 120 columns: E501 in `make lint`)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "arca_rl"


def _module_name(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    return ".".join(parts[:-1] if is_package else parts), is_package


def _own_imports(path: Path, name: str, is_package: bool, known: set[str], *, everywhere: bool) -> set[str]:
    """The package's own modules that `path` imports. `everywhere=False`: those imported when it is imported
    (module level, outside functions and `if TYPE_CHECKING:`); `everywhere=True`: every import statement.
    A package's `__init__` runs before its modules anyway, so a module importing its parent is no edge."""
    found: set[str] = set()

    def absolute(module: str | None, level: int) -> str:
        if level == 0:
            return module or ""
        base = name.split(".") if is_package else name.split(".")[:-1]
        base = base[: len(base) - (level - 1)]
        return ".".join(base + ([module] if module else []))

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if everywhere else _import_time(path):
        if isinstance(node, ast.ImportFrom):
            base = absolute(node.module, node.level)
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in known and m != name and not name.startswith(m + ".")}


def _import_time(path: Path) -> list[ast.stmt]:
    out: list[ast.stmt] = []

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If):
                if "TYPE_CHECKING" not in ast.unparse(node.test):
                    visit(node.body)
                    visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
            elif isinstance(node, ast.ClassDef):
                visit(node.body)
            else:
                out.append(node)

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return out


def _graph(*, everywhere: bool) -> dict[str, set[str]]:
    paths = {(m := _module_name(p))[0]: (p, m[1]) for p in PACKAGE.rglob("*.py")}
    known = set(paths)
    return {name: _own_imports(p, name, pkg, known, everywhere=everywhere) for name, (p, pkg) in paths.items()}


def _circles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[set[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(component)

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return out


# The floors, lowest first. A module imports only from its own floor or the ones below (at import time, inside a
# function or for the type checker alike); docs/layout.md draws the same picture. A unit is a top-level module or a
# package (its modules import each other freely, within the no-circle rule above).
FLOORS: list[tuple[str, set[str]]] = [
    ("tensors, the oracle and the leaves", {
        "errors", "credit", "diagnostics", "group_credit", "self_teacher", "model_credit", "oracle", "models",
        "_causal_lm", "_checks", "_setup_checks", "_credit_fields", "variants",
    }),
    ("other trainers' integrations (verl)", {"integrations"}),
    ("the TRL configs", {"trainer_config"}),
    ("the YAML config, the tasks, the run folder and output folders", {"tasks", "_config", "rundir", "_outfolder"}),
    ("the trainer", {"trainer"}),
    ("one training run", {"_run"}),
    ("the commands' engines", {"_report", "_diagnose", "_sweep", "_demo"}),
    ("the command line and the public API", {"cli", "arca_rl", "_console"}),
]


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_every_unit_has_a_floor():
    units = {_unit(m) for m in _graph(everywhere=True)}
    placed = [u for _, us in FLOORS for u in us]
    assert len(placed) == len(set(placed))  # one floor each
    assert units == set(placed), (units - set(placed), set(placed) - units)


def test_no_import_runs_back_up_a_floor():
    floor = {u: i for i, (_, us) in enumerate(FLOORS) for u in us}
    graph = _graph(everywhere=True)
    assert "arca_rl.trainer_config" in graph["arca_rl.rundir"]  # the walk sees a lazy import (reading TRL defaults)
    up = sorted(
        f"{a} -> {b} ({FLOORS[floor[_unit(a)]][0]} -> {FLOORS[floor[_unit(b)]][0]})"
        for a, targets in graph.items() for b in targets if floor[_unit(b)] > floor[_unit(a)]
    )
    assert up == []


def test_the_wings_are_packages():
    """The trainer, the training run and the run folder are each one package; no module beside them is one of their
    pieces under a prefix (`_trainer_*.py`, `_run.py`, `_runfiles.py`, ...)."""
    for package in ("trainer", "_run", "rundir", "trainer_config"):
        assert (PACKAGE / package / "__init__.py").is_file(), package
        doc = ast.get_docstring(ast.parse((PACKAGE / package / "__init__.py").read_text(encoding="utf-8"))) or ""
        assert "import" in doc, f"{package}/__init__.py: say what may import it"
    beside = sorted(p.name for p in PACKAGE.glob("*.py"))
    stray = [n for n in beside if n.startswith(("_trainer", "_run", "_resume", "_curve", "_evaluation", "_sdpo"))]
    assert stray == [] and "trainer.py" not in beside and "rundir.py" not in beside


def test_own_imports_form_no_circle():
    # when a module is imported, it imports the package's modules one way: no circle at all
    at_import = _graph(everywhere=False)
    assert "arca_rl._report.diagnose_page" in at_import["arca_rl._diagnose.results"]  # the walk sees imports
    assert _circles(at_import) == []
    # nor counting the imports inside functions and for the type checker: the graph of what each module may
    # load, sooner or later, has no circle either
    everywhere = _graph(everywhere=True)
    assert "arca_rl.trainer_config" in everywhere["arca_rl._config.build"]  # the walk sees imports in functions
    assert "arca_rl.trainer_config" not in at_import["arca_rl._config.build"]  # (TRL loads when a config is built)
    assert _circles(everywhere) == []


def test_config_and_run_folder_load_lazily_only_trl():
    """In the config package and the run folder's modules, the only imports of the package's own modules inside
    functions (or for the type checker) are of `trainer_config`: it loads TRL, which reading a config or a run
    folder does not need. Everything else they use is imported with them, so the graph above shows it."""
    everywhere, at_import = _graph(everywhere=True), _graph(everywhere=False)
    ours = [m for m in everywhere if m.startswith("arca_rl._config") or m in ("arca_rl.rundir", "arca_rl.rundir.files")]
    assert "arca_rl._config.schema" in ours and "arca_rl.rundir" in ours
    for name in ours:
        assert everywhere[name] - at_import[name] <= {"arca_rl.trainer_config"}, name


def test_training_does_not_import_a_command_package():
    """The trainer's modules take the oracle from `arca_rl.oracle`, never from `arca diagnose`'s package: no
    module of `arca_rl.trainer` imports `arca_rl._diagnose` (or any of its modules), at import time or inside a
    function."""
    everywhere = _graph(everywhere=True)
    assert "arca_rl.oracle.sampler" in everywhere["arca_rl.trainer.vine"]  # the walk sees the oracle's home
    trainers = [m for m in everywhere if m == "arca_rl.trainer" or m.startswith("arca_rl.trainer.")]
    assert "arca_rl.trainer.vine" in trainers
    for name in trainers:
        assert not any(m == "arca_rl._diagnose" or m.startswith("arca_rl._diagnose.") for m in everywhere[name]), name
