"""The architecture as imports: data flows one way, and no module needs one that needs it.

Read from the source (every ``import``, lazy ones inside functions included), so a cycle or a
wrong-way import fails here before it confuses a reader. The rules are docs/DESIGN.md's.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.cli_process import ROOT, run_python

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
    """Our modules that ``path`` imports, at the top or inside a function.

    ``from package import submodule`` inside that package (``from training.store import
    journal`` in ``training.store.runs``) needs only the submodule: the package itself is always
    initialised before any of its modules, so it is no edge."""
    me = module_name(path)
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            members = [f"{node.module}.{a.name}" for a in node.names]
            own_submodules = me.startswith(node.module + ".") and all(m in modules for m in members)
            names = members if own_submodules else [node.module, *members]
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
    done = run_python(code)
    assert done.returncode == 0, done.stderr[-2000:]


# -- the store owns the home ---------------------------------------------------------------------
# Only training/store builds a path inside the home folder (docs/DESIGN.md, "The store owns the
# disk"); everything else asks it (``store.dataset_list_file("names")``, ``Layout(home).…``). The
# rule, read from the source of training, tuner and app outside training/store: no path is joined
# onto the home or one of the store's folders, that is, no ``/``, ``.joinpath(…)``,
# ``os.path.join(…)`` or ``Path(…, …)`` whose first operand is
#   - a name ``home`` or an attribute ``….home`` (``store.home``, ``s.home``), or
#   - a call of one of the store's folder methods (every ``Layout`` method named ``*_dir``:
#     ``s.datasets_dir()``, ``store.cache_dir()``, ``store.run_dir(run_id)``…).
# Inside a folder the store hands out, its user names its own entries (a cache ``cache_root``,
# an artefact folder ``store.artifact(run_id, "export")``): those operands are not the home's.
STORE = ROOT / "training" / "store"


def store_folder_methods() -> set[str]:
    from training.store.layout import Layout

    return {name for name in vars(Layout) if name.endswith("_dir")}


def is_home(node: ast.expr, folders: set[str]) -> bool:
    if isinstance(node, ast.Name):
        return node.id == "home"
    if isinstance(node, ast.Attribute):
        return node.attr == "home"
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in folders
    )


def joined_onto(node: ast.AST) -> ast.expr | None:
    """The operand a path is joined onto, when ``node`` joins paths."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        return node.left
    if not isinstance(node, ast.Call):
        return None
    name = ast.unparse(node.func)
    if name.endswith(".joinpath"):
        return node.func.value
    if name in ("os.path.join", "Path") and len(node.args) >= 2:
        return node.args[0]
    return None


def home_joins(path: Path, folders: set[str]) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        operand = joined_onto(node)
        if operand is not None and is_home(operand, folders):
            where = path.relative_to(ROOT).as_posix()
            found.append(f"{where}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_home_joins_flags_what_the_rule_says():
    folders = store_folder_methods()
    assert {"datasets_dir", "cache_dir", "run_dir", "weights_uploads_dir"} <= folders
    flagged = [
        "home / 'x'",
        "s.home / 'last_launch.json'",
        "store.datasets_dir() / 'names.json'",
        "s.cache_dir().joinpath('audits')",
        "os.path.join(store.home, 'x')",
        "Path(home, 'datasets')",
        "Path(self.home / 'runs' / run_id)",
    ]
    passed = [
        "Path(cache_root) / 'images-1'",
        "store.artifact(run_id, 'export') / 'model.tflite'",
        "Path.home() / '.keras'",
        "Path(home).expanduser()",
        "store.dataset_list_file('names')",
        "user_home / 'x'",
    ]
    for code, expected in [(c, True) for c in flagged] + [(c, False) for c in passed]:
        tree = ast.parse(code)
        hits = [
            n for n in ast.walk(tree) if (o := joined_onto(n)) is not None and is_home(o, folders)
        ]
        assert bool(hits) is expected, code


def test_only_the_store_builds_paths_in_the_home():
    folders = store_folder_methods()
    found = [
        hit
        for pkg in PACKAGES
        for path in sorted((ROOT / pkg).rglob("*.py"))
        if not path.is_relative_to(STORE)
        for hit in home_joins(path, folders)
    ]
    assert not found, (
        "paths built in the home outside training/store; ask the store for them (add a method "
        "to training/store/layout.py if none names the path):\n" + "\n".join(found)
    )


def test_importing_the_registry_fills_it():
    """The entries live beside the one ``Registry``: whoever can look a backbone up has them.
    The mechanism module holds no entries, so it offers no lookup that could come up empty."""
    code = (
        "from training.model.backbones import REGISTRY, get_backbone;"
        "import training.model.registry as mechanism;"
        "assert get_backbone('ResNet50').name == 'ResNet50' and len(REGISTRY.all()) >= 30;"
        "assert not hasattr(mechanism, 'get_backbone') and not hasattr(mechanism, '_REGISTRY')"
    )
    done = run_python(code)
    assert done.returncode == 0, done.stderr[-2000:]
