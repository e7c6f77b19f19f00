"""The layers: every import runs one way, and the harness stays in small functions.

    cli → {replay, calibrate, bench, validate, farm} → report → workers → harness → strategies → kernel
    config, emul/errors.py and emul/__init__.py are leaves every layer may read.

The one exception is emul/kernel/gc_hooks.py, the compiled switch from a run's strategy number to
the strategy's enqueue and drain: numba cannot call through a registry, so the kernel's seam
imports the strategies it dispatches to.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# layer of each package (a module belongs to its longest matching prefix); higher may import lower
LAYERS: dict[str, float] = {
    "emul.cli": 7,
    "emul.replay": 6, "emul.calibrate": 6, "emul.bench": 6, "emul.validate": 6,
    "emul.farm": 6,
    "emul.report": 5,
    "emul.harness": 4, "workers": 4.5,   # workers run the harness's protocol
    "emul.strategies": 3,
    "emul.kernel": 2,
    "emul.config": 1,
    "emul.errors": 0, "emul": 0,
}
SEAM = ("emul.kernel.gc_hooks", "emul.strategies")
# packages of the same layer that must not import each other
APART = {"emul.replay", "emul.calibrate", "emul.bench", "emul.validate", "emul.farm"}
HARNESS = ("emul/harness", "emul/cli", "emul/config", "emul/report", "emul/replay",
           "emul/calibrate", "emul/bench.py", "emul/validate", "emul/farm", "workers")
MAX_FUNCTION_LINES = 60
MAX_CONTROLLER_LINES = 250


def layer_of(module: str) -> tuple[str, int]:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return best, LAYERS[best]


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, absolute module) of every import of an emul or workers module."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: None if is_package else -1]
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out += [(node.lineno, f"{target}.{a.name}") for a in node.names]
    return [(n, m) for n, m in out if m.split(".")[0] in ("emul", "workers")]


def sources() -> list[Path]:
    return sorted([*ROOT.glob("emul/**/*.py"), *ROOT.glob("workers/*.py")])


def upward_imports(files: list[Path], root: Path = ROOT) -> list[str]:
    bad = []
    for path in files:
        mod = module_name(path, root)
        pkg, level = layer_of(mod)
        for line, target in imported(ast.parse(path.read_text()), mod, path.name == "__init__.py"):
            tpkg, tlevel = layer_of(target)
            if mod.startswith(SEAM[0]) and target.startswith(SEAM[1]):
                continue
            if tlevel > level or (tlevel == level and tpkg != pkg and {pkg, tpkg} <= APART):
                bad.append(f"{path.relative_to(root)}:{line}: {mod} ({pkg}) imports {target} "
                           f"({tpkg})")
    return bad


def test_every_import_runs_downward() -> None:
    assert upward_imports(sources()) == []


def test_an_upward_import_is_caught(tmp_path: Path) -> None:
    """The guard works: a kernel module importing the harness, or config importing the kernel,
    is reported with its file and line. (The probes live in a copy of the tree's shape under
    tmp_path: a file added to emul/ itself would change the compiled-code cache's key.)"""
    kernel = tmp_path / "emul" / "kernel" / "_upward_probe.py"
    config = tmp_path / "emul" / "config" / "_upward_probe.py"
    for probe in (kernel, config):
        probe.parent.mkdir(parents=True, exist_ok=True)
    kernel.write_text("from emul.harness.controller import Group\n")
    config.write_text("import emul.kernel.zram\n")
    found = upward_imports([kernel, config], tmp_path)
    assert len(found) == 2
    assert "emul/kernel/_upward_probe.py:1" in found[0] and "emul.harness" in found[0]
    assert "emul/config/_upward_probe.py:1" in found[1] and "emul.kernel" in found[1]


def test_only_the_seam_reaches_strategies_from_the_kernel() -> None:
    reaching = []
    for path in ROOT.glob("emul/kernel/*.py"):
        mod = module_name(path)
        if any(t.startswith("emul.strategies") for _, t in
               imported(ast.parse(path.read_text()), mod, False)):
            reaching.append(mod)
    assert reaching == [SEAM[0]]


def functions(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node.lineno, node.end_lineno - node.lineno + 1


@pytest.mark.parametrize("area", HARNESS)
def test_harness_functions_are_short(area: str) -> None:
    where = ROOT / area
    files = [where] if where.suffix == ".py" else sorted(where.rglob("*.py"))
    long = [f"{p.relative_to(ROOT)}:{line} {name} ({n} lines)"
            for p in files for name, line, n in functions(p) if n > MAX_FUNCTION_LINES]
    assert long == []


def test_the_controller_is_small() -> None:
    tree = ast.parse((ROOT / "emul/harness/controller.py").read_text())
    sizes = {n.name: n.end_lineno - n.lineno + 1 for n in tree.body if isinstance(n, ast.ClassDef)}
    assert sizes and max(sizes.values()) < MAX_CONTROLLER_LINES, sizes
