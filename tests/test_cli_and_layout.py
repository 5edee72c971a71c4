"""The installed package: layout under one namespace, the console script, global options."""

import importlib
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from unlearnd import __version__
from unlearnd.cli.main import app

PARTS = ("daemon", "registry", "routing", "methods", "models", "evaluation", "world", "cli")


@pytest.mark.parametrize("part", PARTS)
def test_parts_import_under_the_namespace(part):
    module = importlib.import_module(f"unlearnd.{part}")
    # Loaded from the installed package, from the folder at the repository root of that name.
    assert Path(module.__file__).parent.name in (part, "unlearnd")


def test_no_bare_top_level_modules_are_importable():
    # The root folders are reachable only through the unlearnd namespace (editable or not).
    for bare in ("daemon", "registry", "routing", "methods", "models", "evaluation", "world"):
        assert importlib.util.find_spec(bare) is None, bare


def test_version_and_help():
    runner = CliRunner()
    out = runner.invoke(app, ["--version"])
    assert out.exit_code == 0 and __version__ in out.output
    out = runner.invoke(app, ["--help"])
    assert out.exit_code == 0 and "model" in out.output


def test_bad_config_is_a_clear_error_with_its_own_exit_code(tmp_path):
    import typer

    from unlearnd.cli.common import EXIT_CONFIG, settings

    cfg = tmp_path / "bad.toml"
    cfg.write_text("[api]\nport = 0\n")
    probe = typer.Typer()

    @probe.command()
    def show(ctx: typer.Context):
        settings(ctx)

    out = CliRunner().invoke(probe, [], obj={"config_path": cfg})
    assert out.exit_code == EXIT_CONFIG
    assert "api.port" in out.output


def test_console_script_is_installed():
    exe = shutil.which("unlearnd") or str(Path(sys.executable).parent / "unlearnd")
    done = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"unlearnd {__version__}"


def test_api_refuses_a_network_bind_without_a_token():
    from unlearnd.cli.common import EXIT_CONFIG
    from unlearnd.cli.main import app

    for host in ("192.0.2.1", "2001:db8::1"):  # not this machine: old code fails to bind
        out = CliRunner().invoke(app, ["api", "--host", host, "--port", "1"])
        assert out.exit_code == EXIT_CONFIG, out.output
        assert f"refusing to listen on {host} without api.token" in out.output
        assert "--insecure-no-token" in out.output
