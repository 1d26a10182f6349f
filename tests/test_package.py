"""``pip install .`` gives a working ``babysitter``: a wheel built from the working tree, installed
in a fresh virtual environment and run from outside the checkout, imports its own copy of the code.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import shutil
import signal
import site
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.cli_process import run_python
from tests.imagegen import class_image
from tests.test_predict_export import tiny_model

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("training", "tuner", "app")
COMMANDS = ("train", "check", "search", "audit", "backbones", "inspect", "runs", "predict")
COMMANDS += ("export", "demo", "app")
PIP = (sys.executable, "-m", "pip", "-q")
HEADLESS = ("--server.headless", "true", "--server.fileWatcherType", "none")


def declared() -> dict[str, dict]:
    """pyproject's requirements by group: ``core`` (the dependencies) and each extra, as
    {canonical name: specifier}; an extra's own ``babysitter[…]`` entry is left out."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    groups = {"core": project["dependencies"], **project["optional-dependencies"]}
    return {
        group: {
            canonicalize_name(r.name): r.specifier
            for r in map(Requirement, requirements)
            if r.name != "babysitter"
        }
        for group, requirements in groups.items()
    }


def pins(name: str) -> list[Requirement]:
    lines = (ROOT / name).read_text(encoding="utf-8").splitlines()
    kept = (x.split("#")[0].strip() for x in lines)
    return [Requirement(line) for line in kept if line and not line.startswith("-r")]


def test_the_pinned_requirements_lie_inside_the_declared_dependencies():
    """requirements.txt (what CI and the image install: the core and the app) and
    requirements-dev.txt (the jax, onnx and dev extras) name the same distributions as
    pyproject.toml, and every pin satisfies the declared range."""
    groups = declared()
    for name, names in (
        ("requirements.txt", ("core", "app")),
        ("requirements-dev.txt", ("jax", "dev", "onnx")),
    ):
        ranges = {k: v for group in names for k, v in groups[group].items()}
        pinned = pins(name)
        assert {canonicalize_name(pin.name) for pin in pinned} == set(ranges), name
        for pin in pinned:
            (version,) = (spec.version for spec in pin.specifier)
            assert version in ranges[canonicalize_name(pin.name)], f"{pin} is outside its range"
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert "babysitter[app,jax,onnx]" in dev["optional-dependencies"]["dev"]


def imported_distributions(folder: Path) -> dict[str, set[str]]:
    """Every distribution the code under ``folder`` imports (top level or inside a function),
    canonical name → the files importing it; the standard library and our packages left out."""
    ours = {*PACKAGES, "tests", "bench"}
    owners = importlib.metadata.packages_distributions()
    found: dict[str, set[str]] = {}
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                tops = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                tops = [node.module.split(".")[0]]
            else:
                continue
            for top in tops:
                if top in sys.stdlib_module_names or top in ours:
                    continue
                assert top in owners, f"{path}: {top} is imported but no distribution has it"
                for owner in owners[top]:
                    found.setdefault(canonicalize_name(owner), set()).add(path.name)
    return found


# Imports of an extra's distribution from code that runs without it: the file, what it imports,
# and what happens when it is missing.
OPTIONAL_IMPORTS = {
    ("entry.py", "streamlit"): "`babysitter app` says to install the [app] extra",
    ("export_onnx.py", "onnx"): "`export --format onnx` says to install the [onnx] extra",
}


def test_every_import_is_declared():
    """What training and tuner import is a core dependency (JAX: the jax extra, the second
    backend, imported only under KERAS_BACKEND=jax); what the app imports is core or the app
    extra; the tests' is any group."""
    groups = declared()
    allowed = {
        "training": ("core", "jax"),
        "tuner": ("core", "jax"),
        "app": ("core", "app"),
        "tests": ("core", "app", "jax", "dev", "onnx"),
    }
    missing = []
    for folder, names in allowed.items():
        ok = {name for group in names for name in groups[group]}
        for distribution, files in imported_distributions(ROOT / folder).items():
            unguarded = {f for f in files if (f, distribution) not in OPTIONAL_IMPORTS}
            if unguarded and distribution not in ok:
                missing.append(f"{folder}/ imports {distribution} ({', '.join(sorted(files))})")
    assert not missing, "not declared in pyproject.toml for them:\n" + "\n".join(missing)


def test_the_core_runs_without_the_web_app():
    """Without Streamlit, altair and pandas (no [app] extra), the CLI and ``load_model`` import
    and ``babysitter app`` says what to install instead of a traceback."""
    code = (
        "import sys\n"
        "for name in ('streamlit', 'altair', 'pandas'): sys.modules[name] = None\n"
        "from training import TrainedModel, load_model\n"
        "import training.api, training.cli.commands, tuner.commands\n"
        "from tuner.entry import main\n"
        "sys.exit(main(['app']))\n"
    )
    done = run_python(code)
    assert done.returncode == 2, done.stderr[-3000:]
    assert 'pip install "babysitter[app]"' in done.stderr and "Traceback" not in done.stderr


def test_one_version_and_one_table_of_commands():
    """``--version`` says ``training.__version__`` (pyproject reads it too); ``babysitter`` lists
    the training CLI's own table of commands, each of which has a function to run."""
    from training import __version__
    from training.cli import commands, parser
    from tuner import cli as tuner_cli
    from tuner import entry

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "training.__version__"}
    for argv in (["-m", "training", "--version"], ["-c", "from tuner.entry import main; main()"]):
        extra = ["--version"] if argv[0] == "-c" else []
        done = subprocess.run(
            [sys.executable, *argv, *extra], cwd=ROOT, capture_output=True, text=True
        )
        assert done.returncode == 0 and done.stdout.split()[-1] == __version__, done
    assert set(parser.SUBCOMMANDS) == set(commands.COMMANDS)
    assert set(entry.commands()) == {*parser.SUBCOMMANDS, "search", "app"}
    assert entry.SEARCH_HELP in " ".join(tuner_cli.build_parser().format_help().split())


def build_wheel(tmp_path: Path) -> Path:
    """A wheel of a copy of the working tree, so the build's folders stay out of the checkout."""
    source = tmp_path / "source"
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    subprocess.run(
        [
            *PIP,
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            str(source),
            "-w",
            str(tmp_path / "dist"),
        ],
        check=True,
        timeout=300,
    )
    (wheel,) = (tmp_path / "dist").glob("babysitter-*.whl")
    shipped = {name for name in zipfile.ZipFile(wheel).namelist() if ".dist-info/" not in name}
    tree = {
        path.relative_to(source).as_posix()
        for package in PACKAGES
        for path in (source / package).rglob("*")
        if path.is_file()
    }
    assert shipped == tree  # every module, page, data file and the app's Streamlit settings
    return wheel


def make_venv(path: Path) -> Path:
    """A virtual environment that sees this environment's packages (Keras, Streamlit…) but not
    the checkout. A ``.pth`` adds this environment's site folders: ``--system-site-packages``
    would reach only the base interpreter's when the tests themselves run in a virtualenv."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    (site_packages,) = path.glob("lib/python*/site-packages")
    outer = [p for p in [*site.getsitepackages(), site.getusersitepackages()] if Path(p).is_dir()]
    adds = "; ".join(f"site.addsitedir({p!r})" for p in outer)
    (site_packages / "outer_environment.pth").write_text(f"import site; {adds}\n")
    return path / "bin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_installed_wheel_runs_outside_the_checkout(tmp_path):
    wheel = build_wheel(tmp_path)
    bin_dir = make_venv(tmp_path / "venv")
    subprocess.run(
        [
            *PIP,
            "--python",
            str(bin_dir / "python"),
            "install",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def run(*args: str) -> str:
        done = subprocess.run(
            args, cwd=outside, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    from training import __version__

    assert wheel.name.startswith(f"babysitter-{__version__}-")
    assert run(str(bin_dir / "babysitter"), "--version").split() == ["babysitter", __version__]
    help_text = run(str(bin_dir / "babysitter"), "--help")
    listed = {line.split()[0] for line in help_text.splitlines() if line.startswith("    ")}
    assert listed >= set(COMMANDS), help_text

    imported = run(
        str(bin_dir / "python"),
        "-c",
        "import app, training, tuner; print(app.__file__, training.__file__, tuner.__file__)",
    )
    for module_file in imported.split():
        assert Path(module_file).is_relative_to(tmp_path / "venv"), imported

    model, image = tmp_path / "tiny.keras", tmp_path / "red.png"
    tiny_model(("cat", "dog")).save(model)
    class_image(0, seed=0).save(image)
    (result,) = json.loads(
        run(str(bin_dir / "babysitter"), "predict", str(model), str(image), "--json")
    )
    assert {guess["class"] for guess in result["predictions"]} == {"cat", "dog"}

    # The installed app serves, bound where the settings beside its script say (127.0.0.1).
    port = free_port()
    log_path = tmp_path / "app.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [str(bin_dir / "babysitter"), "app", "--server.port", str(port), *HEADLESS],
            cwd=outside,
            env={**env, "PYTHONUNBUFFERED": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while f"http://127.0.0.1:{port}" not in log_path.read_text(errors="replace"):
            assert server.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://127.0.0.1:{port}/_stcore/health", timeout=10) as response:
            assert response.read() == b"ok"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
