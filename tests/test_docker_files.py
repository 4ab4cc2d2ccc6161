"""The Docker files hold together, checked without a Docker engine: the compose file parses,
and every path, command, extra, port and health check they name exists in the project."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml

from cli.main import build_parser
from search.config import load_settings

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
DOCKERFILES = ["Dockerfile", "Dockerfile.cuda"]


def _instructions(name: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (DOCKER / name).read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def _json_list(arguments: str) -> list[str]:
    return yaml.safe_load(arguments)  # a JSON array is YAML


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_is_multi_stage_non_root_and_serves(name):
    steps = _instructions(name)
    stages = [args for op, args in steps if op == "FROM"]
    assert len(stages) >= 2 and " AS " in stages[0].upper(), "a build stage, then the runtime stage"
    for op, args in steps:
        if op == "COPY" and "--from=" not in args:
            *sources, _ = args.split()
            for source in sources:
                assert (ROOT / source).exists(), f"{name} copies {source}, which is not in the project"
        if op == "RUN" and "pip install" in args and "/src[" in args:
            extras = re.findall(r"/src\[([a-z,]+)\]", args)[0].split(",")
            assert set(extras) <= set(_project()["project"]["optional-dependencies"])
    copied = {source for op, args in steps if op == "COPY" and "--from=" not in args
              for source in args.split()[:-1]}
    packages = {name.rstrip("*") for name in _project()["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages <= copied, f"{name} leaves out {sorted(packages - copied)}"
    users = [args for op, args in steps if op == "USER"]
    assert users and users[-1] not in ("root", "0")
    runtime = steps[max(i for i, (op, _) in enumerate(steps) if op == "FROM"):]
    env = " ".join(args for op, args in runtime if op == "ENV")
    index = re.search(r"BLIP2_SEARCH_INDEX=(\S+)", env).group(1)
    assert load_settings(index=index).index == Path(index)
    volumes = _json_list(next(args for op, args in runtime if op == "VOLUME"))
    assert index in volumes, "the index lives on a volume"
    entry = _json_list(next(args for op, args in runtime if op == "ENTRYPOINT"))
    assert entry == ["blip2-search"] and "blip2-search" in _project()["project"]["scripts"]
    command = _json_list(next(args for op, args in runtime if op == "CMD"))
    args = build_parser().parse_args(command)
    assert command[0] == "serve" and args.host == "0.0.0.0"
    assert f"EXPOSE {args.port}" in [f"{op} {a}" for op, a in runtime]
    health = next(args for op, args in runtime if op == "HEALTHCHECK")
    assert f"http://127.0.0.1:{args.port}/healthz" in health
    torch = re.search(r"pip install (torch==\S+)", " ".join(a for op, a in steps if op == "RUN")).group(1)
    assert f"install --quiet {torch}" in (ROOT / "Makefile").read_text(), "the Makefile's torch pin"


def test_the_health_check_path_is_a_route():
    from api.routes.system import router

    assert "/healthz" in {route.path for route in router.routes}


def test_compose_services_images_volumes_and_the_index_job():
    compose = yaml.safe_load((DOCKER / "compose.yml").read_text())
    services = compose["services"]
    assert {"api", "index", "postgres"} <= set(services)
    for name, service in services.items():
        build = service.get("build")
        if build:
            context = (DOCKER / build["context"]).resolve()
            assert context == ROOT and (context / build["dockerfile"]).is_file(), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith(("/", "~", ".", "$")):
                assert source in compose["volumes"], f"{name} mounts an undeclared volume {source}"
    api, job = services["api"], services["index"]
    assert "index:/data/index" in api["volumes"] and "index:/data/index" in job["volumes"]
    assert build_parser().parse_args(job["command"]).run.__module__ == "cli.index"
    assert job["profiles"] and services["postgres"]["profiles"], "optional: started only when asked for"
    assert any(port.endswith(":8000") for port in api["ports"])
    assert services["postgres"]["healthcheck"]["test"][1] == "pg_isready"


def test_an_empty_environment_value_means_unset(monkeypatch):
    """compose passes `BLIP2_SEARCH_API_KEY: ${BLIP2_SEARCH_API_KEY:-}` as an empty string."""
    for name in ("BLIP2_SEARCH_API_KEY", "BLIP2_SEARCH_DATABASE_URL", "BLIP2_SEARCH_MODEL"):
        monkeypatch.setenv(name, "")
    settings = load_settings()
    assert (settings.api_key, settings.database_url, settings.model) == (None, None, None)


def test_the_docs_document_docker():
    page = (ROOT / "docs" / "docker.md").read_text()
    assert "docker/compose.yml" in page and "docker compose" in page
    lines = re.findall(r"^\s*(docker (?:compose|build|run)[^\n]*)", page, flags=re.M)
    assert any(line.startswith("docker compose") for line in lines)
    parser = build_parser()
    for line in lines:
        words = shlex.split(line)  # every documented command parses as a shell line
        if words[1] == "run":  # and what it hands the image's entry point, as blip2-search's arguments
            image = next(i for i, word in enumerate(words) if word.startswith("blip2-search:"))
            if image + 1 < len(words):
                parser.parse_args(words[image + 1 :])
