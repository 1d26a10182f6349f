"""compose.yaml: the app, one search chief and N workers share one run store and one search.

The Docker engine on the development and CI machines has no compose plugin, so the file's
contract is read here; the image itself is smoke-tested in tests/test_docker.py.
"""

from __future__ import annotations

import re

import yaml

from tests.cli_process import ROOT

COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]


def test_every_service_shares_the_home_volume_and_the_images_read_only():
    assert set(SERVICES) == {"app", "chief", "worker"}
    for name, service in SERVICES.items():
        assert "babysitter-home:/data" in service["volumes"], name
        assert any(v.endswith(":/images:ro") for v in service["volumes"]), name
    assert "babysitter-home" in COMPOSE["volumes"]


def test_the_app_is_published_on_loopback_only():
    assert SERVICES["app"]["ports"] == ["127.0.0.1:8501:8501"]
    assert "ports" not in SERVICES["chief"] and "ports" not in SERVICES["worker"]


def test_chief_and_workers_run_the_same_search_in_their_modes():
    chief, worker = SERVICES["chief"], SERVICES["worker"]
    assert chief["environment"]["KERASTUNER_ORACLE_IP"] == "0.0.0.0"
    assert worker["environment"]["KERASTUNER_ORACLE_IP"] == "chief"
    port = chief["environment"]["KERASTUNER_ORACLE_PORT"]
    assert worker["environment"]["KERASTUNER_ORACLE_PORT"] == port
    search = re.compile(r"babysitter search /images \$\{SEARCH_ARGS\} --distributed (\w+)")

    def mode(service) -> str:
        # Compose turns $$ into $ before the shell sees the command.
        found = search.search(" ".join(service["command"].replace("$$", "$").split()))
        assert found, service["command"]
        return found.group(1)

    assert (mode(chief), mode(worker)) == ("chief", "worker")
    # One tuner id per replica (--scale worker=N): the container's host name.
    assert "KERASTUNER_TUNER_ID=worker-$$(hostname)" in worker["command"]
    assert worker["depends_on"] == ["chief"]


def test_search_services_do_not_inherit_the_apps_health_check():
    for name in ("chief", "worker"):
        assert SERVICES[name]["healthcheck"] == {"disable": True}
