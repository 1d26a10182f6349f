"""Keras Tuner's chief/worker mode: one chief and two workers as processes on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

from tests.cli_process import ROOT, cli_env
from tests.imagegen import make_image_folder
from training.store import RunStore
from training.store.trials import stages, trials
from tuner.stages import plan_stages


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_chief_and_two_workers_run_every_trial_exactly_once(tmp_path, babysitter_home):
    data = make_image_folder(tmp_path / "c", {"red": 14, "green": 14, "blue": 14}, size=32)
    args = [
        sys.executable,
        "-m",
        "tuner",
        "search",
        str(data),
        "--backbone",
        "VGG16",
        "--weights",
        "none",
        "--image-size",
        "32",
        "--batch-size",
        "8",
        "--trials",
        "7",
        "--stages",
        "2",
        "--epochs-head",
        "3",
        "--epochs-finetune",
        "0",
        "--top-k",
        "1",
    ]
    env = cli_env(babysitter_home)
    env.update(KERASTUNER_ORACLE_IP="127.0.0.1", KERASTUNER_ORACLE_PORT=str(free_port()))
    chief = subprocess.Popen(
        [*args, "--distributed", "chief", "--json"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    workers = [
        subprocess.Popen(
            [*args, "--distributed", "worker"],
            env={**env, "KERASTUNER_TUNER_ID": f"tuner{i}"},
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    try:
        out, err = chief.communicate(timeout=600)
        logs = [w.communicate(timeout=120)[0] for w in workers]
    finally:
        for p in (chief, *workers):
            p.kill()
    assert chief.returncode == 0, err
    assert all(w.returncode == 0 for w in workers), logs
    run_id = json.loads(out)["run_id"]
    store = RunStore(babysitter_home)
    rows = trials(store, run_id)
    plan = plan_stages(7, 2)
    # Every planned trial ran exactly once, stage by stage, as in a single-process search.
    assert len(rows) == sum(plan) == len({r["trial_id"] for r in rows})
    assert [sum(r["stage"] == s for r in rows) for s in (1, 2)] == plan
    assert [s["stage"] for s in stages(store, run_id)] == [1, 2]
    ran_by = set()
    for stage in (1, 2):
        for details in (store.run_dir(run_id) / "tuner" / f"stage_{stage}").glob("trial_*/*.json"):
            if details.name == "babysitter_trial.json":
                ran_by.add(json.loads(details.read_text())["tuner_id"])
    assert ran_by <= {"tuner0", "tuner1"} and ran_by, ran_by  # the chief only coordinates
    assert store.get_run(run_id).status == "completed"
    assert store.artifact(run_id, "model").exists()
