"""The web app end to end in a real browser: upload a zip, launch a tiny search, read its results,
and close the loop from a finding to the next run.

A Streamlit server on a free loopback port, Debian's ``chromium`` driven by Playwright's Python
package (``executable_path``: no browser download). The walk: Home; a single-class folder the
audit refuses (Launch and Check disabled), then forgotten; a tiny zip uploaded on Datasets; the
sanity gate run from Launch, its banner hidden once the image size changes; an invalid Trials
value refused; values kept across pages; a double-click that starts one 2-stage search, whose
Monitor totals are right from the first draw; the same inference-mode gap on Monitor and
Results; a finding's "apply" button starting the next search with the proposed range; no zombie
among the server's children after the finished jobs; a bad weights file refused in the form; and
every page, with a full-page screenshot of each under ``tests/artifacts/`` (ignored by git).
Skipped only when Playwright or chromium is missing.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.cli_process import ROOT
from tests.imagegen import class_image, make_image_folder, zip_folder
from training import jobs
from training.store import RunStore

pytestmark = pytest.mark.slow  # trains a (tiny) search through the app

ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SEARCH_TIMEOUT_S = 300
PAGE_TIMEOUT_MS = 90_000  # a page's first run may import Keras (Launch, Predict, Architecture)
# Idle: no script run in progress and no element still drawn as a loading skeleton.
IDLE_JS = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    return app !== null && app.getAttribute("data-test-script-state") === "notRunning"
        && document.querySelector('[data-testid="stSkeleton"]') === null;
}"""
EXCEPTION = '[data-testid="stException"]'
SERVER_PID = [0]  # the running server's pid, for the zombie check
GAP_LINE = re.compile(r"Accuracy gap \(train − val\) · [+-]?\d+\.\d% \(train [^)]*inference mode\)")


def chromium_path() -> str | None:
    for candidate in (shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(tmp_path, babysitter_home):
    """``streamlit run app/streamlit_app.py`` on a loopback port, its own store; its URL."""
    port = free_port()
    log = (tmp_path / "streamlit.log").open("wb")
    env = {**os.environ, "BABYSITTER_HOME": str(babysitter_home)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app/streamlit_app.py",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            "--server.fileWatcherType",
            "none",
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: teardown stops all of it
    )
    url = f"http://127.0.0.1:{port}"
    SERVER_PID[0] = proc.pid
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "streamlit.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                    if reply.read().strip() == b"ok":
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the Streamlit server did not become healthy"
            time.sleep(0.25)
        yield url
    finally:
        store = RunStore(babysitter_home)
        for job in jobs.list_jobs(store, status="running"):  # a failed test leaves no trainer
            jobs.cancel(store, job.id, grace_s=5)
        _stop(proc)
        log.close()


def _stop(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")
    executable = chromium_path()
    if executable is None:
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def settle(page) -> None:
    """Wait until the script run that the last action started has finished and is drawn.

    The rerun starts within about 100 ms of the action; idle must also hold twice in a row,
    since lazily loaded elements are drawn as skeletons for a moment after the run ends.
    """
    page.wait_for_timeout(400)
    for _ in range(2):
        page.wait_for_function(IDLE_JS, timeout=PAGE_TIMEOUT_MS, polling=100)
        page.wait_for_timeout(200)
    page.wait_for_function(IDLE_JS, timeout=PAGE_TIMEOUT_MS, polling=100)


def go(page, title: str, heading: str | None = None) -> None:
    """Open a page from the sidebar (same session) and wait for its title and an idle script."""
    links = page.locator('[data-testid="stSidebarNavLink"]')
    links.filter(has=page.get_by_text(title, exact=True)).click()
    main = page.locator('[data-testid="stMain"]')
    main.locator("h1", has_text=heading or title).wait_for(timeout=PAGE_TIMEOUT_MS)
    settle(page)


def shoot(page, name: str) -> Path:
    """A full-page screenshot of the page as it is now, after checking it raised nothing."""
    errors = page.locator(EXCEPTION)
    assert errors.count() == 0, f"{name}: {errors.first.inner_text()}"
    path = ARTIFACTS / f"{name}.png"
    # The app scrolls inside its main section, not the document: grow the window to the
    # section's height for the screenshot, then put it back.
    viewport = page.viewport_size
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": viewport["width"], "height": max(height, viewport["height"])})
    try:
        page.wait_for_timeout(300)  # charts re-measure their container
        page.wait_for_function(IDLE_JS, polling=100)
        page.screenshot(path=str(path), full_page=True)
    finally:
        page.set_viewport_size(viewport)
    return path


def choose(page, label: str, option: str) -> None:
    """Pick an option of a select box or multiselect by typing it, then close its list."""
    box = page.get_by_label(label, exact=True)
    box.click()
    box.fill(option)
    page.get_by_role("option", name=option, exact=True).click()
    settle(page)
    if page.get_by_role("listbox").count():  # a multiselect stays open for more picks
        page.keyboard.press("Escape")
        page.get_by_role("listbox").wait_for(state="detached")


def set_number(page, label: str, value: int) -> None:
    field = page.get_by_label(label, exact=True)
    field.fill(str(value))
    field.press("Enter")
    settle(page)


def shown_command(page, flags: list[str]) -> None:
    """The search command on Launch, once the last rerun has drawn it, holds every flag."""
    with contextlib.suppress(Exception):  # the last rerun may still be on its way: wait for it
        page.wait_for_function(
            """flags => {
                const code = document.querySelector('[data-testid="stCode"]');
                return code !== null && flags.every(flag => code.innerText.includes(flag));
            }""",
            arg=flags,
            timeout=10_000,
        )
    main = page.locator('[data-testid="stMain"]')
    command = main.locator('[data-testid="stCode"]').first.inner_text()
    for flag in flags:
        assert flag in command, command


def test_upload_launch_follow_and_read_results_in_chromium(server, browser, tmp_path):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    try:
        walk(page, server, tmp_path)
    except BaseException:
        with contextlib.suppress(Exception):  # what the browser showed when it went wrong
            page.screenshot(path=str(ARTIFACTS / "failure.png"), full_page=True)
        raise


def walk(page, server: str, tmp_path: Path) -> None:
    data = make_image_folder(tmp_path / "data", {"cat": 12, "dog": 12}, size=32)
    archive = zip_folder(data, tmp_path / "pets.zip", top_level="pets")
    single = make_image_folder(tmp_path / "one-class", {"cat": 6}, size=32)
    probe = tmp_path / "probe.png"
    class_image(0, 99, 32).save(probe)
    shots: list[Path] = []
    main = page.locator('[data-testid="stMain"]')

    page.goto(server)
    main.locator("h1", has_text="Babysitter").wait_for()
    settle(page)
    assert "1. Add a dataset" in main.inner_text()  # Home: three steps
    shots.append(shoot(page, "home"))
    go(page, "Runs")
    assert "No runs yet" in main.inner_text()
    shots.append(shoot(page, "runs-empty"))

    # Datasets: a folder outside the data roots is refused without saying whether it exists.
    go(page, "Datasets")
    add_folder(page, "/etc")
    page.get_by_text("Only dataset folders under").wait_for()
    settle(page)
    folders = RunStore().datasets_dir() / "folders.json"
    assert not folders.exists() or "/etc" not in folders.read_text()
    shots.append(shoot(page, "datasets-refused"))

    # A single-class folder: the audit says why it cannot train, and Launch refuses it.
    add_folder(page, str(single))
    page.get_by_text("Not trainable").first.wait_for()
    go(page, "Launch", "Launch a search")
    page.get_by_text("This dataset cannot be trained").wait_for()
    launch = main.locator('[data-testid="stBaseButton-primary"]', has_text="Launch")
    assert launch.is_disabled() and page.get_by_role("button", name="Check first").is_disabled()
    shots.append(shoot(page, "launch-untrainable"))
    # …and Forget takes it out of the pickers, leaving its files.
    go(page, "Datasets")
    page.get_by_text("Forget this dataset").click()
    page.get_by_role("button", name="Forget", exact=True).click()
    settle(page)
    assert single.is_dir()
    assert "No datasets yet" in main.inner_text()  # the pickers no longer offer it

    # Upload the zip through the file uploader, unpack and audit it.
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(archive)
    page.get_by_role("button", name="Unpack and audit").click()
    page.get_by_text("Unpacked to").wait_for()
    settle(page)
    metrics = page.locator('[data-testid="stMetricValue"]')
    assert metrics.nth(0).inner_text() == "2" and metrics.nth(1).inner_text() == "24"
    assert page.get_by_text("Trainable.").count() == 1
    shots.append(shoot(page, "datasets"))

    # Launch: a tiny 2-stage search on the uploaded dataset.
    go(page, "Launch", "Launch a search")
    assert "pets" in page.get_by_label("Dataset", exact=True).input_value()
    remove = main.locator('button[aria-label^="Remove "]')  # the default backbone's tag
    while remove.count():
        remove.first.click()
        settle(page)
    choose(page, "Backbones", "VGG16")
    choose(page, "Weights", "None (random initial weights)")
    for label, value in (
        ("Image size", 32),
        ("Batch size", 8),
        ("Trials", 2),
        ("Stages", 2),
        ("Head epochs", 1),
        ("Fine-tune epochs", 0),
        ("Top K fine-tuned", 1),
    ):
        set_number(page, label, value)
    flags = [
        "--backbone VGG16",
        "--weights none",
        "--image-size 32",
        "--trials 2",
        "--stages 2",
        "--epochs-head 1",
        "--epochs-finetune 0",
        "--top-k 1",
    ]
    shown_command(page, flags)

    # The sanity gate: its verdict shows for these settings only.
    page.get_by_role("button", name="Check first").click()
    verdict = main.get_by_text(re.compile(r"^The sanity gate (passed|failed)"))
    verdict.first.wait_for(timeout=SEARCH_TIMEOUT_S * 1000)
    settle(page)
    shots.append(shoot(page, "launch-gate"))
    set_number(page, "Image size", 40)
    assert verdict.count() == 0, "a gate checked at 32 px is shown for 40 px"
    set_number(page, "Image size", 32)
    verdict.first.wait_for()
    if "failed" in verdict.first.inner_text():  # random weights may fail a check: go on anyway
        page.get_by_text("Launch anyway, despite the failed checks").click()
        settle(page)

    # An invalid value is named and cannot launch (never the previous value instead).
    set_number(page, "Trials", 0)
    page.get_by_text("Trials must be at least 1.").wait_for()
    assert launch.is_disabled() and main.locator('[data-testid="stCode"]').count() == 0
    shots.append(shoot(page, "launch-invalid"))
    set_number(page, "Trials", 2)

    # The values stay while the user looks at another page.
    go(page, "Runs")
    go(page, "Launch", "Launch a search")
    assert page.get_by_label("Trials", exact=True).input_value() == "2"
    shown_command(page, flags)

    # A double-click starts one job (the gate's job was the first).
    launch.dblclick()
    page.get_by_text(re.compile(r"Started job \d+")).wait_for()
    settle(page)
    assert [j.kind for j in jobs.list_jobs(RunStore())] == ["tuner search", "training check"]
    assert launch.is_disabled()
    shots.append(shoot(page, "launch"))

    # Monitor: totals from the first draw, then follow the job until it completes.
    go(page, "Monitor")
    bar = main.get_by_text(re.compile(r"Head search: trials \d+ / \d+ · stage \d+ of \d+"))
    bar.first.wait_for(timeout=SEARCH_TIMEOUT_S * 1000)
    first = bar.first.inner_text()
    assert re.search(r"trials \d / 2 · stage \d of 2", first), first
    status = main.locator("p", has_text=re.compile(r"Job \d+ · tuner search"))
    status.first.wait_for()
    deadline = time.monotonic() + SEARCH_TIMEOUT_S
    while "· running" in (text := status.first.inner_text()):
        assert time.monotonic() < deadline, f"search still running: {text}\n{_job_log()}"
        page.wait_for_timeout(1000)
    assert "· completed" in text, f"{text}\n{_job_log()}"
    page.get_by_text(re.compile(r"trials 2 / 2 · stage 2 of 2", re.IGNORECASE)).first.wait_for()
    page.get_by_text(re.compile(r"Fine-tunes 1 / 1 done")).first.wait_for()  # the top-K phase
    # The job picker is not redrawn by the live part: it must not show a status gone stale.
    picked = page.get_by_role("combobox", name="Job", exact=True).input_value()
    assert picked.startswith("#2 · tuner search · started") and "running" not in picked, picked
    main.get_by_text(GAP_LINE).first.wait_for()
    monitor_gap = main.get_by_text(GAP_LINE).first.inner_text()
    settle(page)
    shots.append(shoot(page, "monitor"))

    # Results: the finished search's best trial, diagnosis, confusion matrix and model; the
    # same gap as Monitor's.
    (search,) = RunStore().list_runs(kind="search")
    go(page, "Results")
    assert search.id in page.get_by_label("Run", exact=True).input_value()  # the job's run
    headings = main.locator('[data-testid="stHeadingWithActionElements"]').all_inner_texts()
    text = "\n".join(headings)
    assert "Best trial: s1-" in text, headings
    assert "Diagnosis and advice" in text
    assert re.search(r"Validation: confusion matrix \(\d+ images\)", text), headings
    assert main.locator('[data-testid="stVegaLiteChart"]').count() >= 1
    assert page.get_by_role("button", name="Download model (.keras)").count() == 1
    assert main.get_by_text(GAP_LINE).first.inner_text() == monitor_gap
    shots.append(shoot(page, "results"))

    # Apply a finding: a search that overfits is searched again with L2 moved up.
    store = RunStore()
    store.add_findings(search.id, [overfitting(search_l2(store, search.id))])
    go(page, "Runs")
    go(page, "Results")
    buttons = page.get_by_role("button", name="Search again with this change")
    buttons.first.wait_for()
    # Each button sits under the exact command it starts: take the one that moves L2.
    commands = main.locator('[data-testid="stCode"]').filter(has_text="--origin")
    shown = [" ".join(c.split()) for c in commands.all_inner_texts()]
    index = next(i for i, c in enumerate(shown) if "--space l2=" in c)
    assert buttons.count() == len(shown), shown
    shots.append(shoot(page, "results-apply"))
    buttons.nth(index).click()
    main.locator("h1", has_text="Monitor").wait_for()
    settle(page)
    applied = jobs.list_jobs(RunStore())[0]
    assert applied.id == 3 and applied.kind == "tuner search", applied
    assert " ".join(applied.command_line.split()) == shown[index]  # what the page showed
    assert f"--origin {search.id}:" in shown[index]
    page.get_by_role("button", name="Cancel").click()  # the loop is shown: no need to train it
    settle(page)
    assert no_zombies(SERVER_PID[0])

    # Every other page, with the finished run in the store.
    go(page, "Runs")
    assert page.locator('[data-testid="stDataFrame"]').count() == 2  # runs and jobs
    shots.append(shoot(page, "runs"))
    go(page, "Command center")
    assert page.get_by_text("stage 1:").count() >= 1
    shots.append(shoot(page, "command_center"))
    go(page, "Predict")
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(probe)
    page.get_by_text(re.compile(r"^(cat|dog) \(\d+\.\d%\)$")).first.wait_for()
    settle(page)
    shots.append(shoot(page, "predict"))
    go(page, "Architecture")
    page.locator('[data-testid="stMetricValue"]').first.wait_for()
    shots.append(shoot(page, "architecture"))
    go(page, "Datasets")
    shots.append(shoot(page, "datasets-again"))

    # A weights file that is not HDF5 is refused in the form: Launch stays disabled.
    bogus = tmp_path / "bogus.weights.h5"
    bogus.write_bytes(b"not an HDF5 file")
    go(page, "Launch", "Launch a search")
    page.get_by_role("button", name="Launch again").click()
    settle(page)
    choose(page, "Weights", "A weights file")
    page.get_by_label("Weights file", exact=True).fill(str(bogus))
    page.get_by_label("Weights file", exact=True).press("Enter")
    settle(page)
    page.get_by_text("Weights file: not an HDF5 file").wait_for()
    assert launch.is_disabled()
    shots.append(shoot(page, "launch-bad-weights"))

    for path in shots:
        assert path.is_file() and path.stat().st_size > 10_000, path
    assert RunStore().get_run(search.id).status == "completed"
    assert len(jobs.list_jobs(RunStore())) == 3


def add_folder(page, folder: str) -> None:
    field = page.get_by_label("…or a folder on the server", exact=True)
    field.fill(folder)
    field.press("Enter")
    settle(page)
    page.get_by_role("button", name="Add folder").click()
    settle(page)


def search_l2(store: RunStore, run_id: str) -> float:
    """The L2 of the search's best configuration (what a finding's change starts from)."""
    run = store.get_run(run_id)
    best = store.get_run(run.summary["best_run"]).config if run.summary.get("best_run") else {}
    return float(best.get("l2") or (run.summary.get("hyperparameters") or {}).get("l2") or 0.0)


def overfitting(l2: float) -> dict:
    """A ``generalization_gap`` finding whose change raises L2 (10×, or to 1e-4 from 0)."""
    to = float(f"{l2 * 10:.3g}") if l2 > 0 else 1e-4
    return {
        "check": "generalization_gap",
        "status": "warn",
        "measured": 0.3,
        "expected": 0.1,
        "advice": f"Regularize more: --l2 {to:g}.",
        "action": {"op": "raise", "param": "l2", "from": l2, "to": to},
    }


def no_zombies(pid: int, wait_s: float = 5.0) -> bool:
    """No child of ``pid`` is (or stays, past a moment for its reaper) a zombie."""
    deadline = time.monotonic() + wait_s
    while True:
        states = child_states(pid)
        if "Z" not in states.values():
            return True
        assert time.monotonic() < deadline, states
        time.sleep(0.2)


def child_states(pid: int) -> dict[str, str]:
    """Each child's state letter from ``/proc`` (``Z``: a zombie nobody waited for)."""
    children: list[str] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            children += (task / "children").read_text().split()
    states = {}
    for child in children:
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{child}/stat").read_text()
            states[child] = stat.rsplit(")", 1)[1].split()[0]
    return states


def _job_log() -> str:
    store = RunStore()
    found = jobs.list_jobs(store)
    return jobs.log_tail(found[0])[-3000:] if found else "(no job)"


def websocket_status(url: str, host: str) -> int:
    """The HTTP status of a websocket upgrade to the app sent with this ``Host`` and ``Origin``."""
    import http.client

    port = int(url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {
        "Host": host,
        "Origin": f"http://{host}",
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    try:
        conn.request("GET", "/_stcore/stream", headers=headers)
        return conn.getresponse().status
    finally:
        conn.close()


def test_the_websocket_refuses_a_foreign_host_name(server):
    """DNS rebinding: a page served as evil.example that resolves to this machine is refused
    even though its Origin matches its Host; the local names are accepted."""
    port = server.rsplit(":", 1)[1]
    assert websocket_status(server, f"evil.example:{port}") == 403
    assert websocket_status(server, f"localhost:{port}") == 101
