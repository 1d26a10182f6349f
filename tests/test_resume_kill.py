"""SIGKILL a real `train` process mid phase 2; the same command resumes the same run."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from tests.cli_process import ROOT, cli_command, cli_env
from tests.imagegen import make_image_folder
from training.runs import RunStore


@pytest.mark.slow
def test_sigkilled_train_resumes_with_the_same_command(tmp_path, babysitter_home):
    data = make_image_folder(tmp_path / "d", {"red": 6, "green": 6}, size=32)
    command = cli_command(
        "train",
        str(data),
        "--backbone",
        "MobileNetV2",
        "--weights",
        "none",
        "--image-size",
        "32",
        "--batch-size",
        "4",
        "--epochs-head",
        "2",
        "--epochs-finetune",
        "6",
    )
    env = cli_env(babysitter_home)
    first = subprocess.Popen(
        command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    store = RunStore(babysitter_home)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            runs = store.list_runs() if store.db_path.exists() else []
            if runs and any(
                e["phase"] == "finetune" and e["epoch"] >= 2 for e in store.epochs(runs[0].id)
            ):
                break
            assert first.poll() is None, "train finished before it could be killed"
            time.sleep(0.2)
        else:
            pytest.fail("phase 2 never reached epoch 2")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    (killed,) = store.list_runs()
    assert killed.status == "running"  # nobody could mark it: the process died

    second = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    assert f"Resuming run {killed.id}" in second.stdout
    assert "Phase 1 already finished" in second.stdout
    # BackupAndRestore saved after the first phase-2 epoch: fit restarts past it, not at 1.
    assert "Epoch 1/6" not in second.stdout and "Epoch 6/6" in second.stdout
    (done,) = store.list_runs()
    assert done.id == killed.id and done.status == "completed"
    finetune = [e["epoch"] for e in store.epochs(done.id) if e["phase"] == "finetune"]
    assert finetune == [1, 2, 3, 4, 5, 6]
