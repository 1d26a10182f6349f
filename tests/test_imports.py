"""The architecture as imports: data flows one way, and no module needs one that needs it.

Read from the source (every ``import``, lazy ones inside functions included), so a cycle or a
wrong-way import fails here before it confuses a reader. The rules are docs/DESIGN.md's.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_process import ROOT

PACKAGES = ("training", "tuner", "app")
# Who may import whom among our packages (``app`` may import everything of ours).
MAY_NOT_IMPORT = {
    "training": ("tuner", "app"),
    "tuner": ("app",),
    "training.babysit": (
        "training.fit",
        "training.gate",
        "training.store",
        "training.model.classifier",
    ),
    "training.data": (
        "training.fit",
        "training.store",
        "training.model.classifier",
    ),
    "training.store": ("training.fit", "training.gate", "training.data", "training.babysit"),
    "training.model": ("training.fit", "training.gate", "training.store", "training.babysit"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def our_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """Our modules that ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        else:
            continue
        found.update(n for n in names if n in modules)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = our_modules()
    return {name: imports_of(path, modules) - {name} for name, path in modules.items()}


def test_no_import_cycles(graph):
    """Depth-first search for a back edge; the message shows the whole cycle."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt) :], nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_data_flows_one_way(graph):
    wrong = [
        f"{module} imports {target}"
        for module, targets in graph.items()
        for target in targets
        for scope, forbidden in MAY_NOT_IMPORT.items()
        if (module == scope or module.startswith(scope + "."))
        and any(target == f or target.startswith(f + ".") for f in forbidden)
    ]
    assert not wrong, "\n".join(sorted(wrong))


def test_configs_and_the_store_import_without_keras():
    """The app builds the CLI's own configs and reads the store without loading Keras."""
    code = (
        "import sys, training, training.config, tuner.config, training.store, training.cli,"
        " training.fit;"
        "assert 'keras' not in sys.modules, sorted(m for m in sys.modules if 'keras' in m)[:5]"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
