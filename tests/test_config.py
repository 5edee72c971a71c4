from pathlib import Path

import pytest

from unlearnd.config import ConfigError, load_settings


def test_defaults_need_no_file():
    s = load_settings(environ={})
    assert s.workdir == Path("unlearnd-data")
    assert s.db_url.startswith("sqlite:///") and s.db_url.endswith("unlearnd-data/registry.db")
    assert s.device == "auto" and s.dtype == "auto"
    assert s.inbox == Path("unlearnd-data/inbox")
    assert s.routing.pool_size == 20


def test_file_then_environment_override(tmp_path):
    cfg = tmp_path / "unlearnd.toml"
    cfg.write_text('workdir = "data"\n[daemon]\nlease_s = 60\nmax_attempts = 5\n')
    s = load_settings(cfg, environ={"UNLEARND_DAEMON__LEASE_S": "90", "UNLEARND_DEVICE": "cpu"})
    assert s.workdir == (tmp_path / "data").resolve()  # relative to the file, not the cwd
    assert s.daemon.lease_s == 90.0
    assert s.daemon.max_attempts == 5
    assert s.device == "cpu"


def test_config_found_through_env_and_cwd(tmp_path, monkeypatch):
    cfg = tmp_path / "elsewhere.toml"
    cfg.write_text("seed = 7\n")
    monkeypatch.setenv("UNLEARND_CONFIG", str(cfg))
    assert load_settings().seed == 7
    monkeypatch.delenv("UNLEARND_CONFIG")
    (tmp_path / "unlearnd.toml").write_text("seed = 8\n")
    monkeypatch.chdir(tmp_path)
    assert load_settings().seed == 8


@pytest.mark.parametrize(
    ("text", "env", "needle"),
    [
        ("[daemon]\nlease_seconds = 3\n", {}, "daemon.lease_seconds: unknown key"),
        ("[daemon]\nlease_s = -1\n", {}, "daemon.lease_s"),
        ('device = "tpu"\n', {}, "device"),
        ("", {"UNLEARND_ROUTING__POOL_SIZE": "many"}, "routing.pool_size"),
        ("", {"UNLEARND_DAEMON__LEASE": "1"}, "UNLEARND_DAEMON__LEASE: unknown key daemon.lease"),
        ("", {"UNLEARND_DAEMON__LEASE": "1"}, "closest key: daemon.lease_s"),
        ("", {"UNLEARND_API__TOKEN__X": "1"}, "api.token"),
        ("workdir = [\n", {}, "not valid TOML"),
    ],
)
def test_bad_config_names_the_key(tmp_path, text, env, needle):
    cfg = tmp_path / "unlearnd.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, environ=env)
    assert needle in str(err.value)


def test_test_hooks_are_not_settings():
    env = {"UNLEARND_TEST_PG_URL": "postgresql://x", "UNLEARND_TEST_PAUSE_AT": "after_claim"}
    assert load_settings(environ=env).seed == 0


def test_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "absent.toml", environ={})


def test_other_tools_variables_are_ignored_with_one_warning(caplog):
    env = {"UNLEARND_BIN": "/x", "UNLEARND_HOME": "/h", "UNLEARND_LOG": "1", "UNLEARND_SEED": "4"}
    with caplog.at_level("WARNING", logger="unlearnd.config"):
        s = load_settings(environ=env)
    assert s.seed == 4
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "UNLEARND_BIN" in warning and "UNLEARND_HOME" in warning
    assert "UNLEARND_LOG; closest key: log_level" in warning


def test_other_tools_variables_do_not_stop_a_command(monkeypatch):
    from typer.testing import CliRunner

    from unlearnd.cli.common import EXIT_CONFIG
    from unlearnd.cli.main import app

    monkeypatch.setenv("UNLEARND_BIN", "/usr/local/bin/unlearnd")
    out = CliRunner().invoke(app, ["versions"])
    assert out.exit_code != EXIT_CONFIG and "unknown key" not in out.output, out.output
