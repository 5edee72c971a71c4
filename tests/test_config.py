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
        ("", {"UNLEARND_NOPE": "1"}, "nope: unknown key"),
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
