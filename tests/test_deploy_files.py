"""The deployment files: Dockerfile, deploy/ (compose, Kubernetes, scripts) and the lock files.

No container engine runs here, so these read the files as data (the Dockerfile's instructions,
the YAML documents, the lock files) and check what a deployment relies on, and run what the image
runs (its entrypoint, command and healthcheck) on the checkout's install. The image's install
steps run for real in CI (deploy/smoke.sh runs deploy/install.sh into a fresh venv and serves
from it), and deploy/lint.sh lints the files there.
"""

from __future__ import annotations

import ast
import base64
import http.server
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from service.config import Settings
from tests.conftest import TEST_SECRET_KEY

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# The lock's platform (deploy/lock.sh): CPython 3.11 on linux x86_64.
LOCK_ENVIRONMENT = {
    "python_version": "3.11",
    "python_full_version": "3.11.0",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
}
# Variables of the image and its entrypoint that are not fields of Settings.
CONTAINER_ONLY = {"PELOSYNC_MIGRATE"}


# --- helpers ------------------------------------------------------------------------------------


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's instructions ``(INSTRUCTION, arguments)``, one list per stage."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        instruction = (word.upper(), " ".join(rest.split()))
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def instructions_before_from() -> list[str]:
    text = (ROOT / "Dockerfile").read_text()
    head = text[: text.index("\nFROM ")]
    return [line.split(None, 1)[1] for line in head.splitlines() if line.startswith("ARG ")]


def instructions(stage: list[tuple[str, str]], name: str) -> list[str]:
    return [args for word, args in stage if word == name]


def image_env() -> dict[str, str]:
    """The runtime stage's ``ENV`` as a mapping."""
    words = shlex.split(" ".join(instructions(dockerfile_stages()[-1], "ENV")))
    return dict(word.split("=", 1) for word in words)


def image_files() -> dict[str, Path]:
    """What the runtime stage copies from the checkout: ``{path in the image: source}``."""
    copied: dict[str, Path] = {}
    for args in instructions(dockerfile_stages()[-1], "COPY"):
        words = [w for w in args.split() if not w.startswith("--")]
        if not args.startswith("--from="):
            (source, target) = words
            copied[target] = ROOT / source
    return copied


def load_compose(name: str = "compose.yml") -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / name).read_text())
    assert isinstance(data, dict)
    return data


def k8s_objects() -> dict[tuple[str, str], dict[str, Any]]:
    """Every object of deploy/kubernetes/*.yaml by ``(kind, name)``."""
    objects: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is None:
                continue
            if doc.get("kind") == "Kustomization":
                objects[("Kustomization", path.name)] = doc
                continue
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in objects, f"{key} defined twice"
            objects[key] = doc
    return objects


def only_container(pod_spec: dict[str, Any]) -> dict[str, Any]:
    containers = pod_spec["containers"]
    assert len(containers) == 1
    return containers[0]  # type: ignore[no-any-return]


def env_by_name(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container.get("env", [])}


def read_lock(path: Path) -> dict[str, tuple[str, list[str]]]:
    """``{canonical name: (pinned version, hashes)}`` of a ``--generate-hashes`` lock file."""
    text = re.sub(r"\\\n", " ", path.read_text())
    pins: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement, *options = line.split()
        name, sep, version = requirement.partition("==")
        assert sep, f"{path.name}: {requirement!r} is not pinned with =="
        hashes = [o.removeprefix("--hash=") for o in options if o.startswith("--hash=sha256:")]
        pins[canonicalize_name(name)] = (version, hashes)
    return pins


def applies(requirement: Requirement, extra: str = "") -> bool:
    if requirement.marker is None:
        return not extra
    return requirement.marker.evaluate({**LOCK_ENVIRONMENT, "extra": extra})


def runtime_requirements() -> list[Requirement]:
    """pyproject's runtime dependencies, plus what their extras bring (uvicorn[standard])."""
    found: list[Requirement] = []
    for line in PYPROJECT["project"]["dependencies"]:
        requirement = Requirement(line)
        if not applies(requirement):
            continue
        found.append(requirement)
        for extra in requirement.extras:
            for item in importlib.metadata.requires(requirement.name) or []:
                sub = Requirement(item)
                if applies(sub, extra):
                    found.append(sub)
    return found


def documented_variables(path: Path) -> set[str]:
    return set(re.findall(r"\bPELOSYNC_[A-Z0-9_]+\b", path.read_text()))


def settings_variables() -> set[str]:
    return {f"PELOSYNC_{name.upper()}" for name in Settings.model_fields}


# --- Dockerfile ---------------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_on_slim_python() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2
    args = dict(a.split("=", 1) for a in instructions_before_from())
    for stage in stages:
        image = stage[0][1].split()[0]
        image = args.get(image.strip("${}"), image)
        assert re.fullmatch(r"python:3\.11[.\d]*-slim(-\w+)?", image), image
    # The runtime stage takes the built venv, nothing else from the build stage.
    copies = instructions(stages[-1], "COPY")
    assert [c for c in copies if c.startswith("--from=")] == ["--from=build /opt/venv /opt/venv"]


def test_dockerfile_runs_as_a_numeric_non_root_user() -> None:
    users = instructions(dockerfile_stages()[-1], "USER")
    assert users, "the runtime stage needs a USER"
    uid, _, gid = users[-1].partition(":")
    # Numeric, so Kubernetes' runAsNonRoot can verify it; the manifests use the same ids.
    assert uid.isdigit() and int(uid) > 0 and (not gid or int(gid) > 0)
    pod = k8s_objects()[("Deployment", "pelosync")]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == int(uid)


def test_dockerfile_installs_with_the_install_script_from_the_lock() -> None:
    build = dockerfile_stages()[0]
    runs = instructions(build, "RUN")
    assert "./deploy/install.sh --deps-only /opt/venv" in runs
    assert "./deploy/install.sh /opt/venv" in runs
    copied = " ".join(instructions(build, "COPY"))
    for needed in ("requirements.lock", "deploy/install.sh", "deploy/build-requirements.lock"):
        assert needed in copied
    # No pip or apt of its own: every install step is in the script CI runs too.
    assert not any("pip " in r or "apt-get" in r for r in runs)


def test_dockerfile_copies_only_files_that_exist() -> None:
    for stage in dockerfile_stages():
        for args in instructions(stage, "COPY"):
            if args.startswith("--from="):
                continue
            words = [w for w in args.split() if not w.startswith("--")]
            for source in words[:-1]:
                assert (ROOT / source).exists(), f"COPY {source}: no such file"


def test_dockerfile_serves_with_healthcheck_volume_and_entrypoint() -> None:
    runtime = dockerfile_stages()[-1]
    (healthcheck,) = instructions(runtime, "HEALTHCHECK")
    assert json.loads(healthcheck[healthcheck.index("CMD ") + 4 :]) == [
        "pelosync-healthcheck",
        "/healthz",
    ]
    assert instructions(runtime, "ENTRYPOINT") == ['["pelosync-entrypoint"]']
    assert instructions(runtime, "CMD") == ['["serve"]']
    assert instructions(runtime, "VOLUME") == ['["/data"]']
    env = image_env()
    assert env["PELOSYNC_DATA_DIR"] == "/data" and env["PELOSYNC_HOST"] == "0.0.0.0"
    assert env["PELOSYNC_ENV"] == "production"
    assert env["PELOSYNC_PORT"] == "8080" and instructions(runtime, "EXPOSE") == ["8080"]


# --- docker compose -----------------------------------------------------------------------------


def test_compose_runs_postgres_with_a_volume_and_a_healthcheck() -> None:
    compose = load_compose()
    db = compose["services"]["db"]
    assert db["image"].startswith("postgres:")
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert any(v.endswith(":/var/lib/postgresql/data") for v in db["volumes"])
    assert db["volumes"][0].split(":")[0] in compose["volumes"]


def test_compose_runs_two_replicas_after_one_migration() -> None:
    compose = load_compose()
    services = compose["services"]
    app, migrate = services["pelosync"], services["migrate"]
    assert app["deploy"]["replicas"] == 2
    assert app["env_file"] == ".env" and (DEPLOY / ".env.example").is_file()
    assert app["environment"]["PELOSYNC_MIGRATE"] == "false"
    assert app["environment"]["PELOSYNC_DATABASE_URL"].startswith("postgresql://")
    assert "pelosync-healthcheck" in app["healthcheck"]["test"]
    assert app["depends_on"]["db"]["condition"] == "service_healthy"
    assert app["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert migrate["command"] == ["db", "upgrade"]
    assert migrate["image"] == app["image"]
    assert migrate["depends_on"]["db"]["condition"] == "service_healthy"
    for service in (app, migrate):
        (volume,) = service["volumes"]
        name, target = volume.split(":")
        assert target == "/data" and name in compose["volumes"]
    assert app["build"]["context"] == ".." and (DEPLOY / ".." / "Dockerfile").is_file()


def test_the_household_compose_is_one_container_on_sqlite() -> None:
    compose = load_compose("compose.single.yml")
    (name,) = compose["services"]
    app = compose["services"][name]
    assert app["command"] == ["serve"]  # migrates at start: nothing else shares the database
    assert app["env_file"] == ".env"
    assert set(app["environment"]) == {"PELOSYNC_SECRET_KEY"}
    assert ":?" in app["environment"]["PELOSYNC_SECRET_KEY"]  # refuses to start without it
    (volume,) = app["volumes"]
    volume_name, target = volume.split(":")
    assert target == "/data" and volume_name in compose["volumes"]
    assert "replicas" not in app.get("deploy", {})
    assert app["ports"] == ["127.0.0.1:8080:8080"]
    assert "pelosync-healthcheck" in app["healthcheck"]["test"]
    assert app["build"]["context"] == ".."
    docs = (ROOT / "docs" / "deployment.md").read_text()
    # It is the first way documented, before the PostgreSQL example.
    assert docs.index("compose.single.yml") < docs.index("deploy/compose.yml")


# --- Kubernetes ---------------------------------------------------------------------------------


def test_k8s_deployment_runs_two_probed_replicas_with_resources() -> None:
    deployment = k8s_objects()[("Deployment", "pelosync")]
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]
    assert (
        deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    )
    container = only_container(pod["spec"])
    port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert port_names == {"http": 8080}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    resources = container["resources"]
    assert {"cpu", "memory"} <= resources["requests"].keys()
    assert "memory" in resources["limits"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    # Longer than serve's 25 s drain, so in-flight deliveries finish on a rollout.
    assert pod["spec"]["terminationGracePeriodSeconds"] > 25


def test_k8s_secrets_come_from_the_secret_and_migrations_from_the_job() -> None:
    objects = k8s_objects()
    secret = objects[("Secret", "pelosync")]
    keys = set(secret["stringData"])
    assert keys == {"PELOSYNC_SECRET_KEY", "PELOSYNC_DATABASE_URL"}
    deployment = only_container(objects[("Deployment", "pelosync")]["spec"]["template"]["spec"])
    job = objects[("Job", "pelosync-migrate")]
    migrate = only_container(job["spec"]["template"]["spec"])
    for container in (deployment, migrate):
        env = env_by_name(container)
        for key in keys:
            ref = env[key]["valueFrom"]["secretKeyRef"]
            assert ref == {"name": "pelosync", "key": key}
    assert env_by_name(deployment)["PELOSYNC_MIGRATE"]["value"] == "false"
    assert migrate["args"] == ["db", "upgrade"]
    assert migrate["image"] == deployment["image"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] in {"Never", "OnFailure"}
    (config,) = deployment["envFrom"]
    assert ("ConfigMap", config["configMapRef"]["name"]) in objects


def test_k8s_service_reaches_the_pods_and_kustomization_lists_the_files() -> None:
    objects = k8s_objects()
    service = objects[("Service", "pelosync")]
    pod = objects[("Deployment", "pelosync")]["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    kustomization = objects[("Kustomization", "kustomization.yaml")]
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    # The Job is applied on its own before each rollout (its template is immutable).
    assert listed == on_disk - {"migrate-job.yaml"}


# --- lock files ---------------------------------------------------------------------------------


def test_lock_pins_every_runtime_dependency_within_pyproject_ranges() -> None:
    lock = read_lock(ROOT / "requirements.lock")
    for requirement in runtime_requirements():
        name = canonicalize_name(requirement.name)
        assert name in lock, f"{name} is a runtime dependency missing from requirements.lock"
        version, _ = lock[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"requirements.lock pins {name}=={version}, pyproject wants {requirement}: "
            "run deploy/lock.sh"
        )


def test_lock_has_hashes_and_no_test_extras() -> None:
    lock = read_lock(ROOT / "requirements.lock")
    assert len(lock) > 20
    for name, (_, hashes) in lock.items():
        assert hashes, f"{name} has no --hash in requirements.lock"
    runtime = {canonicalize_name(r.name) for r in runtime_requirements()}
    for line in PYPROJECT["project"]["optional-dependencies"]["test"]:
        name = canonicalize_name(Requirement(line).name)
        if name not in runtime:
            assert name not in lock, f"test-only {name} is in the runtime lock"


def third_party_imports() -> set[str]:
    """Top-level modules that service/ imports from outside the standard library."""
    modules: set[str] = set()
    for path in (ROOT / "service").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - {"__future__", "service"}


def test_lock_provides_every_module_the_service_imports() -> None:
    lock = read_lock(ROOT / "requirements.lock")
    distributions = importlib.metadata.packages_distributions()
    for module in sorted(third_party_imports()):
        names = {canonicalize_name(d) for d in distributions.get(module, [module])}
        assert names & lock.keys(), (
            f"service/ imports {module} ({', '.join(sorted(names))}), which requirements.lock "
            "does not install: add it to [project].dependencies and run deploy/lock.sh"
        )


def test_build_lock_pins_the_build_backend() -> None:
    lock = read_lock(DEPLOY / "build-requirements.lock")
    for line in PYPROJECT["build-system"]["requires"]:
        requirement = Requirement(line)
        version, hashes = lock[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version) and hashes


# --- scripts ------------------------------------------------------------------------------------


@pytest.fixture
def fake_pelosync(tmp_path: Path) -> Path:
    """A ``pelosync`` on PATH that prints its arguments, one per line."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "pelosync"
    script.write_text("#!/bin/sh\nprintf '%s\\n' \"$@\"\n")
    script.chmod(0o755)
    return bin_dir


@pytest.mark.parametrize(
    ("args", "migrate", "expected"),
    [
        ([], None, ["serve"]),
        ([], "false", ["serve", "--no-migrate"]),
        (["serve", "--port", "9000"], "FALSE", ["serve", "--port", "9000", "--no-migrate"]),
        (["serve"], "true", ["serve"]),
        (["db", "upgrade"], "false", ["db", "upgrade"]),
    ],
)
def test_entrypoint_runs_pelosync_and_honours_migrate_opt_out(
    fake_pelosync: Path, args: list[str], migrate: str | None, expected: list[str]
) -> None:
    env = {"PATH": f"{fake_pelosync}:/usr/bin:/bin"}
    if migrate is not None:
        env["PELOSYNC_MIGRATE"] = migrate
    done = subprocess.run(
        ["sh", str(DEPLOY / "entrypoint.sh"), *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.splitlines() == expected


def test_entrypoint_refuses_an_unclear_migrate_value(fake_pelosync: Path) -> None:
    done = subprocess.run(
        ["sh", str(DEPLOY / "entrypoint.sh")],
        env={"PATH": f"{fake_pelosync}:/usr/bin:/bin", "PELOSYNC_MIGRATE": "maybe"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "PELOSYNC_MIGRATE" in done.stderr and "maybe" in done.stderr
    assert done.stdout == ""


def test_scripts_are_executable() -> None:
    for name in ("entrypoint.sh", "install.sh", "smoke.sh", "lint.sh", "lock.sh", "healthcheck.py"):
        assert (DEPLOY / name).stat().st_mode & stat.S_IXUSR, f"deploy/{name} is not executable"


def test_install_script_refuses_bad_usage() -> None:
    done = subprocess.run(
        ["bash", str(DEPLOY / "install.sh")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2 and "usage" in done.stderr


def test_the_image_command_serves_until_sigterm(tmp_path: Path) -> None:
    """What the image runs when started (its ENTRYPOINT and CMD, with its ENV), run here on the
    checkout's install: it migrates, serves, passes the image's HEALTHCHECK and /readyz, and
    stops with exit code 0 on SIGTERM. (deploy/smoke.sh does the same in CI after
    deploy/install.sh, the image's install steps, into a fresh venv; deploy/lint.sh lints the
    files. Both need PyPI, so they run there rather than here.)"""
    runtime = dockerfile_stages()[-1]
    bin_dir = tmp_path / "image-bin"  # the image's /usr/local/bin
    bin_dir.mkdir()
    for target, source in image_files().items():
        (bin_dir / Path(target).name).symlink_to(source)
    (entrypoint,) = (json.loads(a) for a in instructions(runtime, "ENTRYPOINT"))
    (command,) = (json.loads(a) for a in instructions(runtime, "CMD"))
    (healthcheck,) = instructions(runtime, "HEALTHCHECK")
    probe = json.loads(healthcheck[healthcheck.index("CMD ") + 4 :])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **{k: v for k, v in image_env().items() if k != "PATH"},
        # The venv's bin stands in for /opt/venv/bin; nothing of this process's PELOSYNC_*.
        "PATH": f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PELOSYNC_DATA_DIR": str(tmp_path / "data"),
        "PELOSYNC_HOST": "127.0.0.1",
        "PELOSYNC_PORT": str(port),
        "PELOSYNC_SECRET_KEY": TEST_SECRET_KEY,
    }
    (tmp_path / "data").mkdir()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [*entrypoint, *command], cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        for path in (probe[-1], "/readyz"):
            deadline = time.monotonic() + 120
            while subprocess.run([*probe[:-1], path], env=env, capture_output=True).returncode:
                assert server.poll() is None, f"serve exited:\n{log.read_text()}"
                assert time.monotonic() < deadline, f"{path} never answered 200:\n{log.read_text()}"
                time.sleep(0.5)
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0, log.read_text()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


class _Probe(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = {"/healthz": 200, "/readyz": 503}.get(self.path, 404)
        body = b'{"status": "x"}'
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


@pytest.fixture
def probe_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Probe)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def run_healthcheck(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PELOSYNC_PORT": str(port), "HTTP_PROXY": "http://127.0.0.1:9"}
    return subprocess.run(
        [sys.executable, str(DEPLOY / "healthcheck.py"), *args],
        env=env,
        capture_output=True,
        text=True,
    )


def test_healthcheck_passes_only_on_200(probe_server: int) -> None:
    assert run_healthcheck(probe_server).returncode == 0  # /healthz by default
    refused = run_healthcheck(probe_server, "/readyz")
    assert refused.returncode == 1 and "HTTP 503" in refused.stderr


def test_healthcheck_fails_when_nothing_listens() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = run_healthcheck(port)
    assert done.returncode == 1 and f"127.0.0.1:{port}/healthz" in done.stderr


# --- configuration documented -------------------------------------------------------------------


@pytest.mark.parametrize("doc", ["deploy/.env.example", "docs/configuration.md"])
def test_every_setting_is_documented(doc: str) -> None:
    documented = documented_variables(ROOT / doc)
    missing = settings_variables() - documented
    assert not missing, f"{doc} does not document {sorted(missing)}"
    unknown = documented - settings_variables() - CONTAINER_ONLY
    assert not unknown, f"{doc} documents settings that do not exist: {sorted(unknown)}"


def test_k8s_config_names_real_settings() -> None:
    config = k8s_objects()[("ConfigMap", "pelosync-config")]
    assert set(config["data"]) <= settings_variables()


def test_readme_links_the_deployment_docs() -> None:
    readme = (ROOT / "README.md").read_text()
    for doc in ("deployment", "operations", "destinations", "configuration"):
        assert f"(docs/{doc}.md)" in readme
        assert (ROOT / "docs" / f"{doc}.md").is_file()
    for path in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / path).is_file(), path


# --- the webhook verification examples of docs/destinations.md, run against real signatures ----

DESTINATIONS_DOC = ROOT / "docs" / "destinations.md"


def doc_block(language: str, containing: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", DESTINATIONS_DOC.read_text(), re.S)
    (block,) = [b for b in blocks if containing in b]
    return block


def signed_cases() -> list[tuple[str, str, dict[str, str], bytes, bool]]:
    """``(case, secret, headers, body, valid)`` signed by pelosync's own webhook signer."""
    from service.destinations.kinds.webhook import generate_secret, sign

    secret, old, other = generate_secret(), generate_secret(), generate_secret()
    body = json.dumps({"type": "workout.synced", "data": {"title": "20 min ride ✓"}}).encode()
    now = int(time.time())

    def headers(at: int, secrets: list[str], msg_id: str = "msg_1") -> dict[str, str]:
        return {
            "Webhook-Id": msg_id,
            "Webhook-Timestamp": str(at),
            "Webhook-Signature": sign(msg_id, at, body, secrets),
        }

    missing = headers(now, [secret])
    del missing["Webhook-Signature"]
    return [
        ("valid", secret, headers(now, [secret]), body, True),
        ("rotation: old secret first", secret, headers(now, [old, secret]), body, True),
        ("tampered body", secret, headers(now, [secret]), body.replace(b"20", b"45"), False),
        ("other secret", other, headers(now, [secret]), body, False),
        ("too old", secret, headers(now - 600, [secret]), body, False),
        ("from the future", secret, headers(now + 600, [secret]), body, False),
        ("id changed", secret, {**headers(now, [secret]), "Webhook-Id": "msg_2"}, body, False),
        ("no signature", secret, missing, body, False),
    ]


def test_python_stdlib_verification_example() -> None:
    namespace: dict[str, Any] = {}
    exec(doc_block("python", "def verify("), namespace)
    for case, secret, headers, body, valid in signed_cases():
        assert namespace["verify"](secret, headers, body) is valid, case


def test_python_standardwebhooks_example() -> None:
    for case, secret, headers, body, valid in signed_cases():
        namespace: dict[str, Any] = {"secret": secret}
        exec(doc_block("python", "standardwebhooks"), namespace)
        assert namespace["handle"](body, headers) == (204 if valid else 401), case


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js")
def test_node_stdlib_verification_example(tmp_path: Path) -> None:
    (tmp_path / "verify.js").write_text(doc_block("javascript", "function verify("))
    cases = [
        {
            "case": case,
            "secret": secret,
            "headers": {k.lower(): v for k, v in headers.items()},
            "body": base64.b64encode(body).decode(),
            "valid": valid,
        }
        for case, secret, headers, body, valid in signed_cases()
    ]
    driver = (
        'const { verify } = require("./verify.js");\n'
        'const cases = JSON.parse(require("node:fs").readFileSync(0, "utf8"));\n'
        "console.log(JSON.stringify(cases.map((c) => "
        'verify(c.secret, c.headers, Buffer.from(c.body, "base64")))));\n'
    )
    (tmp_path / "driver.js").write_text(driver)
    done = subprocess.run(
        ["node", "driver.js"],
        cwd=tmp_path,
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    results = json.loads(done.stdout)
    assert dict(zip([c["case"] for c in cases], results, strict=True)) == {
        c["case"]: c["valid"] for c in cases
    }
