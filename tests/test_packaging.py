"""Tocsin installs as software installs: a wheel built from the source tree, installed into a fresh
venv and run from a directory outside the checkout, declares an incident against the fake Slack."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path

import pytest

from handlers.render import TemplatesMissing, check_templates
from tests.conftest import ROOT, SECRET
from tests.fakeslack import FakeSlack
from tests.processes import environment, free_port, terminate, wait_healthy
from tests.signed import SlackRequests

SOURCES = ("pyproject.toml", "README.md", "bot", "handlers", "store", "templates")


def test_an_install_without_templates_fails_at_start_up_naming_the_directory(tmp_path: Path) -> None:
    with pytest.raises(TemplatesMissing, match=f"no message templates in {tmp_path}: this installation"):
        check_templates(tmp_path)
    check_templates()  # this checkout's, through the installed package handlers.templates


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel `pip wheel .` builds from a copy of the source tree (so no build/ lands in the checkout)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, source / name)
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(work / "dist"), str(source))
    (built,) = (work / "dist").glob("tocsin-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed (not editable). Its dependencies come from the test run's
    own environment through a .pth line, so nothing is downloaded; Tocsin itself comes only from the wheel."""
    target = tmp_path_factory.mktemp("venv") / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", str(target))
    python = target / "bin" / "python"
    site = _run(str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").strip()
    ours = [path for path in sys.path if path.endswith("site-packages")]
    (Path(site) / "test-run-dependencies.pth").write_text("\n".join(ours) + "\n")
    _run(sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel))
    return target


@pytest.mark.slow
def test_the_wheel_ships_every_template_and_migration(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = {f"handlers/templates/{path.name}" for path in (ROOT / "templates").glob("*.j2")}
    migrations = {
        f"store/migrations/{path.relative_to(ROOT / 'store' / 'migrations')}"
        for path in (ROOT / "store" / "migrations").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert len(templates) > 30 and len(migrations) > 12
    assert templates <= names, sorted(templates - names)
    assert migrations <= names, sorted(migrations - names)


@pytest.mark.slow
async def test_installed_wheel_serves_and_declares_from_outside_the_source_tree(
    venv: Path, tmp_path: Path, fake: FakeSlack
) -> None:
    home = tmp_path / "elsewhere"
    home.mkdir()
    config = home / "app.yaml"
    shutil.copy2(ROOT / "app.yaml", config)
    tocsin = str(venv / "bin" / "tocsin")
    env = environment(
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=fake.api_url,
        DATABASE_URL=f"sqlite:///{home / 'tocsin.db'}",
        TOCSIN_CONFIG=str(config),
    )
    env.pop("PYTHONPATH", None)

    where = await _output(str(venv / "bin" / "python"), "-c", _WHERE, cwd=home, env=env)
    assert all(line.startswith(str(venv)) for line in where.splitlines()), where
    assert (await _output(tocsin, "--version", cwd=home, env=env)).strip() == "tocsin 0.1.0"

    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as handle:
        process = await asyncio.create_subprocess_exec(
            tocsin, "serve", "--host", "127.0.0.1", "--port", str(port),
            cwd=home, env=env, stdout=handle, stderr=handle,
        )  # fmt: skip
    try:
        await wait_healthy(f"http://127.0.0.1:{port}", process, log)
        slack = SlackRequests(f"http://127.0.0.1:{port}/slack/events", SECRET, fake)
        try:
            reply = await slack.command("declare P2 Checkout is failing")
        finally:
            await slack.close()
        assert "INC-1" in reply.body, reply.body
        cards = await fake.wait_for(
            lambda: [m for m in fake.posts(event_type="incident_declared") if m.channel.startswith("C0000")]
        )
        assert fake.channels[cards[0].channel].name == "inc-1-checkout-is-failing"
        assert "Checkout is failing" in cards[0].text
    finally:
        code = await terminate(process)
    assert code == 0 and "Traceback" not in log.read_text(), log.read_text()

    # An installation that lost its templates says so at start-up instead of failing every command.
    shutil.rmtree(Path(where.splitlines()[1]))
    broken = await asyncio.create_subprocess_exec(
        tocsin, "serve", "--port", str(free_port()), cwd=home, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(broken.communicate(), 30)
    assert broken.returncode == 1
    assert err.decode().splitlines() == [
        f"tocsin: no message templates in {where.splitlines()[1]}: this installation of Tocsin is incomplete "
        "(reinstall it, e.g. `pip install .` from the source tree)"
    ]


# Where the venv's Python finds Tocsin's code and templates.
_WHERE = "import bot, handlers.render as r; print(bot.__file__); print(r.TEMPLATES)"


def _run(*command: str) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


async def _output(*command: str, cwd: Path, env: Mapping[str, str]) -> str:
    process = await asyncio.create_subprocess_exec(
        *command, cwd=cwd, env=dict(env), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    return out.decode()
