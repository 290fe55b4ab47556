"""docker-compose.yml, checked statically (this machine has no Docker engine).

The file is interpolated as Compose does (tests/deploy/compose.py) with test values for the
required variables, then validated against the vendored Compose Specification schema and
checked for what operations rely on: pinned images, health checks, a scalable worker, the API
migrating before it serves, settings that exist, and the production settings that start.

Each structural check is a function of the compose model; `test_each_check_catches_its_fault`
breaks a copy of the model once per check and expects the check to fail. Set
BATON_TEST_COMPOSE_FILE to run the whole file against another compose file.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from sqlalchemy.engine import make_url

from settings import ProductionSettingsError, Settings
from tests.deploy.compose import MissingVariable, load
from workflows.search_attributes import CLI_TYPES

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = Path(os.environ.get("BATON_TEST_COMPOSE_FILE", ROOT / "docker-compose.yml"))
SCHEMA = ROOT / "tests" / "vendor" / "compose-spec" / "compose-spec.json"

# jobs that run once and exit (restart: "no"); every other service is long-running
ONE_SHOT = {"temporal-schema", "temporal-init"}
APP_SERVICES = ("api", "worker")

# values for the variables the file requires (${VAR:?...}); random-looking, as in production
REQUIRED = {
    "POSTGRES_PASSWORD": "3f9c0a7d5e1b2c4d6e8f0a1b2c3d4e5f6a7b8c9d",
    "APP_DB_PASSWORD": "9a8b7c6d5e4f30211f2e3d4c5b6a79881726354a",
    "TEMPORAL_DB_PASSWORD": "51c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0",
    "BATON_JWT_SECRET": "0c1d2e3f405162738495a6b7c8d9eaf0b1c2d3e4f5061728",
    "BATON_PAYLOAD_KEYS": "k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
    "BATON_SEAL_PKCS12_PASSWORD": "seal-password-from-the-ca",
    "BATON_WEBAUTHN_RP_ID": "baton.example.com",
    "BATON_WEBAUTHN_ORIGIN": "https://baton.example.com",
    "BATON_TEMPORAL_UI_URL": "https://temporal.baton.example.com",
    "SEAL_PKCS12_FILE": "/etc/baton/seal.p12",
}

Compose = dict[str, Any]


def compose_model(environment: dict[str, str] | None = None) -> tuple[Compose, set[str]]:
    return load(COMPOSE_FILE, REQUIRED if environment is None else environment)


@pytest.fixture(scope="module")
def compose() -> Compose:
    return compose_model()[0]


def services(model: Compose) -> dict[str, Compose]:
    return model["services"]


def shell_script(command: Any) -> str:
    """The script of a `sh -c <script>` command (list or string form)."""
    if isinstance(command, list):
        assert command[:2] == ["sh", "-c"], f"expected a sh -c command, got {command}"
        return command[2]
    return str(command)


def settings_env_names() -> set[str]:
    """The environment variable of each Settings field: BATON_<NAME>, or its own alias."""
    names: set[str] = set()
    for name, info in Settings.model_fields.items():
        choices = getattr(info.validation_alias, "choices", None)
        if choices:  # read under another name, e.g. PROMETHEUS_MULTIPROC_DIR
            names.update(c for c in choices if isinstance(c, str) and c.isupper())
        else:
            names.add(f"BATON_{name.upper()}")
    return names


# --- the checks ---------------------------------------------------------------------------


def check_schema(model: Compose) -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    assert schema["$schema"].startswith("https://json-schema.org/draft-07/")
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(model), key=lambda e: list(e.path))
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors)


# exact releases: major.minor.patch; PostgreSQL numbers its patch releases major.minor
_EXACT_TAG = re.compile(r"v?\d+\.\d+\.\d+([-.+][A-Za-z0-9.+-]+)?")
_EXACT_POSTGRES_TAG = re.compile(r"\d+\.\d+(-[a-z0-9]+)?")


def check_images_pinned(model: Compose) -> None:
    for name, service in services(model).items():
        if "build" in service:
            continue  # built here from the Dockerfile, whose base image is checked below
        image = service.get("image", "")
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: image {image!r} has no tag"
        pattern = _EXACT_POSTGRES_TAG if repository == "postgres" else _EXACT_TAG
        assert pattern.fullmatch(tag), f"{name}: image {image!r} is not an exact version"


def check_healthchecks(model: Compose) -> None:
    for name, service in services(model).items():
        if name in ONE_SHOT:
            assert service.get("restart") == "no", f"one-shot {name} must not restart"
            continue
        health = service.get("healthcheck")
        assert health and health.get("test") and not health.get("disable"), \
            f"{name} runs for good but has no healthcheck"
        assert service.get("restart") in ("unless-stopped", "always"), \
            f"{name} is long-running but is not restarted"
    assert set(services(model)) >= ONE_SHOT, "a one-shot job named in this test is gone"


def check_worker_scalable(model: Compose) -> None:
    worker = services(model)["worker"]
    assert "container_name" not in worker, "a container_name stops --scale worker=N"
    for port in worker.get("ports", []):
        published = port.get("published") if isinstance(port, dict) else \
            (str(port).split(":")[-2] if ":" in str(port) else None)
        assert not published, f"the worker publishes host port {port}: replicas would clash"
    assert int(worker.get("deploy", {}).get("replicas", 1)) >= 2


def check_api_migrates_before_serving(model: Compose) -> None:
    api = services(model)["api"]
    lines = [line.strip() for line in shell_script(api["command"]).splitlines() if line.strip()]
    migrate = next(i for i, line in enumerate(lines) if "cli.py migrate" in line
                   or "alembic upgrade head" in line)
    serve = next(i for i, line in enumerate(lines) if "uvicorn" in line)
    assert lines[0] in ("set -e", "set -eu"), "a failed migration must stop the container"
    assert migrate < serve, "the API must migrate the database before it starts"
    assert lines[serve].startswith("exec "), "uvicorn must replace the shell (signals)"
    processes = int(api["environment"].get("WEB_CONCURRENCY", "1"))
    assert processes >= 2 or "--workers" in lines[serve], "the API runs several processes"


def check_settings_exist(model: Compose, used_variables: set[str]) -> None:
    known = settings_env_names()
    in_containers = {key for service in services(model).values()
                     for key in (service.get("environment") or {})}
    for name in sorted(used_variables | in_containers):
        if name.startswith("BATON_") or name == "PROMETHEUS_MULTIPROC_DIR":
            assert name in known, f"{name} in docker-compose.yml is not a field of settings.py"


def check_search_attributes(model: Compose) -> None:
    listed = services(model)["temporal-init"]["environment"]["SEARCH_ATTRIBUTES"]
    pairs = dict(pair.split("=") for pair in listed.split())
    assert pairs == CLI_TYPES


CHECKS: dict[str, Callable[[Compose], None]] = {
    "schema": check_schema,
    "images pinned": check_images_pinned,
    "healthchecks": check_healthchecks,
    "worker scalable": check_worker_scalable,
    "api migrates first": check_api_migrates_before_serving,
    "settings exist": lambda model: check_settings_exist(model, set()),
    "search attributes": check_search_attributes,
}


@pytest.mark.parametrize("name", list(CHECKS))
def test_compose_file_passes(compose: Compose, name: str) -> None:
    CHECKS[name](compose)


def test_every_baton_variable_is_a_setting() -> None:
    model, used = compose_model()
    check_settings_exist(model, used)


# --- each check fails on the fault it is there for ---------------------------------------


def _set(path: str, value: Any) -> Callable[[Compose], None]:
    def apply(model: Compose) -> None:
        *parents, last = path.split("/")
        node = model
        for key in parents:
            node = node[key]
        node[last] = value
    return apply


def _delete(path: str) -> Callable[[Compose], None]:
    def apply(model: Compose) -> None:
        *parents, last = path.split("/")
        node = model
        for key in parents:
            node = node[key]
        del node[last]
    return apply


def _swap_api_script(model: Compose) -> None:
    script = shell_script(model["services"]["api"]["command"])
    lines = script.splitlines()
    migrate = next(i for i, line in enumerate(lines) if "cli.py migrate" in line)
    moved = lines[:migrate] + lines[migrate + 1:] + [lines[migrate]]
    model["services"]["api"]["command"] = ["sh", "-c", "\n".join(moved)]


FAULTS: list[tuple[str, str, Callable[[Compose], None]]] = [
    ("schema", "an unknown service key", _set("services/api/restart_policy", "always")),
    ("schema", "replicas as a list", _set("services/worker/deploy/replicas", [3])),
    ("images pinned", "latest", _set("services/temporal/image", "temporalio/server:latest")),
    ("images pinned", "a bare major", _set("services/postgres/image", "postgres:15")),
    ("images pinned", "no tag", _set("services/temporal-ui/image", "temporalio/ui")),
    ("images pinned", "a minor line", _set("services/redis/image", "redis:7.4-alpine")),
    ("healthchecks", "api without one", _delete("services/api/healthcheck")),
    ("healthchecks", "worker without one", _delete("services/worker/healthcheck")),
    ("healthchecks", "prometheus disabled", _set("services/prometheus/healthcheck",
                                                 {"disable": True})),
    ("healthchecks", "a restarting one-shot", _set("services/temporal-init/restart",
                                                   "on-failure")),
    ("worker scalable", "a container name", _set("services/worker/container_name", "w")),
    ("worker scalable", "a host port", _set("services/worker/ports", ["9464:9464"])),
    ("api migrates first", "migrations after uvicorn", _swap_api_script),
    ("api migrates first", "no set -e", lambda model: model["services"]["api"].update(
        command=["sh", "-c", shell_script(model["services"]["api"]["command"])
                 .replace("set -e\n", "")])),
    ("settings exist", "a made-up setting", _set("services/worker/environment/BATON_WORKERS",
                                                 "3")),
    ("search attributes", "one missing", lambda model: model["services"]["temporal-init"][
        "environment"].update(SEARCH_ATTRIBUTES="BatonStage=Keyword")),
]


@pytest.mark.parametrize(("check", "fault", "breaker"), FAULTS,
                         ids=[f"{check}: {fault}" for check, fault, _ in FAULTS])
def test_each_check_catches_its_fault(compose: Compose, check: str, fault: str,
                                      breaker: Callable[[Compose], None]) -> None:
    broken = copy.deepcopy(compose)
    breaker(broken)
    with pytest.raises((AssertionError, KeyError, StopIteration)):
        CHECKS[check](broken)


def test_every_check_has_a_fault() -> None:
    assert {check for check, _, _ in FAULTS} == set(CHECKS)


# --- production settings -------------------------------------------------------------------


@pytest.mark.parametrize("variable", sorted(REQUIRED))
def test_each_production_secret_is_required(variable: str) -> None:
    """Leaving out a secret or the site's address stops `docker compose` before it starts."""
    environment = {k: v for k, v in REQUIRED.items() if k != variable}
    with pytest.raises(MissingVariable, match=variable):
        compose_model(environment)
    with pytest.raises(MissingVariable, match=variable):
        compose_model({**environment, variable: ""})


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_containers_start_in_production(compose: Compose, service: str, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment compose gives the API and the worker passes settings.py's production
    check; only the seal's path is moved to a file that exists here."""
    environment = services(compose)[service]["environment"]
    assert environment["BATON_ENV"] == "production"
    secret_target = services(compose)[service]["secrets"][0]["target"]
    assert environment["BATON_SEAL_PKCS12_PATH"] == f"/run/secrets/{secret_target}"
    for name in list(os.environ):
        if name.startswith("BATON_"):
            monkeypatch.delenv(name)
    seal = tmp_path / "seal.p12"
    seal.write_bytes(b"placeholder")
    for key, value in environment.items():
        monkeypatch.setenv(key, str(value))
    monkeypatch.setenv("BATON_SEAL_PKCS12_PATH", str(seal))
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.env == "production" and settings.production_problems() == []
    assert settings.database_url.startswith("postgresql+psycopg://")
    # and with the development password, the same environment is refused
    monkeypatch.setenv("BATON_DATABASE_URL",
                       environment["BATON_DATABASE_URL"].replace(REQUIRED["APP_DB_PASSWORD"],
                                                                 "baton"))
    with pytest.raises(ProductionSettingsError, match="BATON_DATABASE_URL"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_api_and_worker_share_one_configuration(compose: Compose) -> None:
    api, worker = (services(compose)[s]["environment"] for s in APP_SERVICES)
    for key in ("BATON_DATABASE_URL", "BATON_PAYLOAD_KEYS", "BATON_PAYLOAD_ACTIVE_KEY_ID",
                "BATON_TEMPORAL_ADDRESS", "BATON_TEMPORAL_NAMESPACE", "BATON_TASK_QUEUE",
                "BATON_SEAL_PKCS12_PATH", "BATON_ORG_TIMEZONE"):
        assert api[key] == worker[key], key


# --- what the services point at ------------------------------------------------------------


def test_baton_and_temporal_connect_as_their_own_roles(compose: Compose) -> None:
    """Neither connects as the superuser, and each has its own password."""
    postgres = services(compose)["postgres"]
    superuser = postgres["environment"]["POSTGRES_USER"]
    app_url = make_url(services(compose)["api"]["environment"]["BATON_DATABASE_URL"])
    temporal = services(compose)["temporal"]["environment"]
    schema_job = services(compose)["temporal-schema"]["environment"]
    assert app_url.username == "baton" and app_url.database == "baton"
    assert temporal["POSTGRES_USER"] == schema_job["SQL_USER"] == "temporal"
    assert superuser not in (app_url.username, temporal["POSTGRES_USER"])
    passwords = [postgres["environment"]["POSTGRES_PASSWORD"], app_url.password,
                 temporal["POSTGRES_PWD"]]
    assert len(set(passwords)) == 3
    assert schema_job["SQL_PASSWORD"] == temporal["POSTGRES_PWD"]
    # the roles' passwords reach the init script that creates them
    assert postgres["environment"]["APP_DB_PASSWORD"] == app_url.password
    assert postgres["environment"]["TEMPORAL_DB_PASSWORD"] == temporal["POSTGRES_PWD"]
    assert "./deploy/postgres:/docker-entrypoint-initdb.d:ro" in postgres["volumes"]


def test_temporal_reads_the_dynamic_config_that_reports_problems(compose: Compose) -> None:
    temporal = services(compose)["temporal"]
    in_container = "/etc/temporal/" + temporal["environment"]["DYNAMIC_CONFIG_FILE_PATH"]
    for volume in temporal["volumes"]:
        source, target = volume.split(":")[:2]
        if in_container.startswith(target.rstrip("/") + "/"):
            host_file = ROOT / source / Path(in_container).relative_to(target)
            break
    else:
        pytest.fail(f"no volume mounts {in_container}")
    config = yaml.safe_load(host_file.read_text(encoding="utf-8"))
    threshold = config["system.numConsecutiveWorkflowTaskProblemsToTriggerSearchAttribute"]
    assert threshold[0]["value"] > 0


def test_temporal_ui_decodes_through_the_api_codec(compose: Compose) -> None:
    ui = services(compose)["temporal-ui"]["environment"]
    assert ui["TEMPORAL_CODEC_ENDPOINT"] == REQUIRED["BATON_WEBAUTHN_ORIGIN"] + "/codec"
    assert ui["TEMPORAL_ADDRESS"] == services(compose)["api"]["environment"][
        "BATON_TEMPORAL_ADDRESS"]


def test_prometheus_scrapes_the_api_and_every_worker(compose: Compose) -> None:
    prometheus = services(compose)["prometheus"]
    assert prometheus["profiles"] == ["observability"]
    mount = next(v for v in prometheus["volumes"] if v.endswith("/prometheus.yml:ro"))
    config = yaml.safe_load((ROOT / mount.split(":")[0]).read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    worker_port = int(services(compose)["worker"]["environment"]
                      ["BATON_WORKER_METRICS_ADDRESS"].rpartition(":")[2])
    assert jobs["baton-worker"]["dns_sd_configs"] == [
        {"names": ["worker"], "type": "A", "port": worker_port, "refresh_interval": "30s"}]
    assert jobs["baton-api"]["static_configs"] == [{"targets": ["api:8000"]}]
    assert "8000" in services(compose)["api"]["command"][2]


def test_published_ports_listen_on_loopback_only(compose: Compose) -> None:
    """The API, the UI and Temporal's gRPC (no auth) are reached through the TLS proxy."""
    for name, service in services(compose).items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} to all"


def test_dockerfile_base_image_is_pinned() -> None:
    froms = re.findall(r"^FROM\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.M)
    assert froms
    for image in froms:
        assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-[a-z]+", image), image
