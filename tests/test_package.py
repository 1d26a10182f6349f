"""``pip install .`` gives a working ``babysitter``: a wheel built from the working tree, installed
in a fresh virtual environment and run from outside the checkout, imports its own copy of the code.
"""

from __future__ import annotations

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

from tests.imagegen import class_image
from tests.test_predict_export import tiny_model

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("training", "tuner", "app")
COMMANDS = ("train", "check", "search", "audit", "backbones", "inspect", "runs", "predict")
COMMANDS += ("export", "demo", "app")
PIP = (sys.executable, "-m", "pip", "-q")
HEADLESS = ("--server.headless", "true", "--server.fileWatcherType", "none")


def test_the_pinned_requirements_lie_inside_the_declared_dependencies():
    """requirements.txt (what CI and the image install) and the package's dependencies name the
    same distributions, and every pin satisfies the declared range."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {r.name: r.specifier for r in map(Requirement, project["dependencies"])}
    lines = (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    pins = [Requirement(line) for line in (x.split("#")[0].strip() for x in lines) if line]
    assert {pin.name for pin in pins} == set(declared)
    for pin in pins:
        (version,) = (spec.version for spec in pin.specifier)
        assert version in declared[pin.name], f"{pin} is outside {declared[pin.name]}"


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
