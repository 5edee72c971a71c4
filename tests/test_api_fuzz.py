"""The HTTP API under a real fuzzer: schemathesis, every check, against a live `unlearnd api`
and its own /openapi.json. Any failure (a 5xx, an undocumented status, a schema-valid request
rejected, a schema-invalid one accepted, a response off its schema) fails the test."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_api import TOKEN, ApiServer, populate

from unlearnd.config import Settings
from unlearnd.registry import open_registry

TESTS = Path(__file__).parent


def schemathesis_run(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`st run` as in docs/api.md: every check (the default; a time limit is not
    one), tests/fuzz_hooks.py teaching it images, tests/schemathesis.toml."""
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "fuzz_hooks", "PYTHONPATH": str(TESTS)}
    cmd = [sys.executable, "-c", "from schemathesis.cli import schemathesis; schemathesis()",
           "--config-file", str(TESTS / "schemathesis.toml"), "run", f"{url}/openapi.json",
           "-H", f"Authorization: Bearer {TOKEN}", "--request-timeout", "60",
           "--no-color", *args]  # fmt: skip
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("fuzz") / "w"
    store = open_registry(Settings(workdir=workdir))
    populate(store)
    store.close()
    served = ApiServer(workdir, UNLEARND_API__TOKEN=TOKEN)
    # The first answer loads the model (seconds): before the fuzzer times its requests.
    assert served.client.post("/generate", json={"prompt": "hi"}).status_code == 200
    yield served
    served.stop()


def test_schemathesis_finds_nothing(fuzzed_server):
    result = schemathesis_run(fuzzed_server.url, "--seed", "1", "--max-examples", "10")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-8000:] + fuzzed_server.output()
    generated = re.search(r"(\d+) generated, (\d+) passed", out)
    assert generated and generated[1] == generated[2] and int(generated[1]) > 500, out[-3000:]
