"""The HTTP API through a real `unlearnd api` process on a loopback port.

One server for the module (starting it imports torch: seconds); tests that change the
registry say so and check only what they changed.
"""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from test_intake import GOOD
from test_registry_support import add_request, blob, version
from typer.testing import CliRunner

from unlearnd.api import create_app
from unlearnd.cli.main import app as cli_app
from unlearnd.config import Settings
from unlearnd.registry import open_registry

TOKEN = "test-token-1234"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ApiServer:
    """`unlearnd api` in a subprocess; its output goes to a file (a full pipe would block it)."""

    def __init__(self, workdir: Path, **env: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir.parent / f"api-{self.port}.log"
        clean = {k: v for k, v in os.environ.items() if not k.startswith("UNLEARND_")}
        clean.update({"UNLEARND_WORKDIR": str(workdir), "HF_HUB_OFFLINE": "1", **env})
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "unlearnd.cli.main", "api", "--port", str(self.port)],
                env=clean,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.client = httpx.Client(base_url=self.url, timeout=60)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 180.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                break
            try:
                if self.client.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"the API did not come up:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text()[-3000:]

    def stop(self) -> None:
        """SIGTERM, then a graceful shutdown. uvicorn re-raises the signal once it has shut
        down, so the exit status is -SIGTERM rather than 0; its log says it finished."""
        self.client.close()
        self.proc.terminate()
        code = self.proc.wait(30)
        assert code in (0, -signal.SIGTERM), self.output()
        assert "Application shutdown complete" in self.output()


def populate(store) -> dict[str, int]:
    """base -> r1 -> r2 (live) plus a gated r3: four versions, three gate results."""
    passed = {"forget_acc": 0.0, "gate": {"passed": True, "failed": []}, "answers_refused": 0.75,
              "answers_degenerate": 0.0, "answers_hallucinated": 0.25,
              "answers_informative": 0.0}  # fmt: skip
    failed = {"forget_acc": 0.9, "gate": {"passed": False, "failed": ["forget_acc"]}}
    base = version(store, kind="base")
    store.move_alias("live", base.id, expected_from=None, who="setup", why="base model")
    head = base
    for name in ("r1", "r2"):
        add_request(store, name)
        new = version(store, parent=head.id, request_id=name, method="ga", metrics=passed)
        store.move_alias("live", new.id, expected_from=head.id, who="worker", why=name)
        head = new
    add_request(store, "r3")
    gated = version(
        store, parent=head.id, request_id="r3", method="ga", metrics=failed, status="gated"
    )
    return {"base": base.id, "head": head.id, "gated": gated.id}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("api") / "w"
    store = open_registry(Settings(workdir=workdir))
    ids = populate(store)
    served = ApiServer(workdir, UNLEARND_API__TOKEN=TOKEN)
    yield served, store, ids, workdir
    served.stop()
    store.close()


def test_reads_are_open(server):
    api, _, ids, _ = server
    c = api.client
    versions = c.get("/versions").json()
    assert [v["id"] for v in versions][-1] == ids["base"] and len(versions) == 4
    assert c.get(f"/versions/{ids['gated']}").json()["status"] == "gated"
    assert (
        c.get("/versions", params={"before": ids["gated"], "limit": 1}).json()[0]["id"]
        == ids["head"]
    )
    assert {r["request_id"] for r in c.get("/requests").json()} == {"r1", "r2", "r3"}
    shown = c.get("/requests/r1").json()
    assert shown["state"] == "received" and [v["request_id"] for v in shown["versions"]] == ["r1"]
    assert "live" in c.get("/aliases").json()
    history = c.get("/aliases/live/history").json()
    assert [e["why"] for e in history[:3]] == ["base model", "r1", "r2"]
    assert c.get("/jobs").json() == [] and isinstance(c.get("/events").json(), list)
    assert c.get("/readyz").json()["status"] == "ready"
    schema = c.get("/openapi.json").json()
    assert {"/requests", "/rollback", "/generate", "/classify", "/metrics"} <= set(schema["paths"])
    assert "HTTPBearer" in schema["components"]["securitySchemes"]


def test_unknown_things_are_404_json(server):
    c = server[0].client
    for path in ("/versions/999", "/requests/nope", "/no/such/route"):
        r = c.get(path)
        assert r.status_code == 404 and r.json()["error"], path


def test_writes_refused_without_the_token(server):
    api, store, ids, _ = server
    live = store.get_alias("live")
    writes = [
        ("/rollback", {"to": ids["base"], "why": "x"}),
        ("/requests/r1/revert", {"why": "x"}),
        ("/requests", GOOD),
    ]
    for path, body in writes:
        missing = api.client.post(path, json=body)
        assert missing.status_code == 401 and "bearer token" in missing.json()["error"], path
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = api.client.post(path, json=body, headers={"Authorization": "Bearer wrong"})
        assert wrong.status_code == 403 and wrong.json() == {"error": "wrong token"}, path
    assert store.get_alias("live") == live


def test_writes_refused_when_no_token_is_configured(tmp_path):
    # In-process client: no extra server for one configuration flag.
    with TestClient(create_app(Settings(workdir=tmp_path / "w"))) as c:
        r = c.post("/rollback", json={"to": 1, "why": "x"}, headers=AUTH)
        assert r.status_code == 403 and "no api.token is configured" in r.json()["error"]


def test_answering_bodies_are_capped(tmp_path):
    settings = Settings(workdir=tmp_path / "w")
    settings.api.max_body_bytes = 2000
    big = {"prompt": "x" * 3000, "model": "live", "messages": [], "labels": []}
    with TestClient(create_app(settings)) as c:
        for path in ("/generate", "/classify", "/v1/chat/completions"):
            r = c.post(path, json=big)
            assert r.status_code == 413 and "max_body_bytes" in r.json()["error"], path
        parts = iter([b'{"prompt": "', b"x" * 3000, b'"}'])  # chunked: no content-length
        r = c.post("/generate", content=parts, headers={"Content-Type": "application/json"})
        assert r.status_code == 413
        small = {"model": "nope", "messages": [{"role": "user", "content": "hi"}]}
        r = c.post("/v1/chat/completions", json=small)  # under the cap: reaches the route whole
        assert r.status_code == 404 and "'nope'" in r.json()["error"]


def test_a_model_that_cannot_load_is_a_503(tmp_path):
    settings = Settings(workdir=tmp_path / "w")
    settings.model.path = str(tmp_path / "no-such-model")
    store = open_registry(settings)
    base = version(store, kind="base")
    store.move_alias("live", base.id, expected_from=None, who="setup", why="base")
    with TestClient(create_app(settings)) as c:
        r = c.post("/generate", json={"prompt": "hi"})
        assert r.status_code == 503 and "cannot be loaded" in r.json()["error"]


def test_bad_input_gets_a_4xx_with_a_message(server):
    c = server[0].client
    raw = {**AUTH, "Content-Type": "application/json"}
    r = c.post("/rollback", content=b'{"to": 2, "why":', headers=raw)
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
    r = c.post("/rollback", json={"to": "two", "whyy": "x"}, headers=AUTH)
    assert r.status_code == 422
    assert {f["field"] for f in r.json()["fields"]} == {"to", "why", "whyy"}
    r = c.post("/requests", content=b"{not json", headers=raw)
    assert r.status_code == 422 and "not valid JSON" in r.json()["error"]
    r = c.post("/requests", json={**GOOD, "kind": "person", "extra": 1}, headers=AUTH)
    assert r.status_code == 422 and {f["field"] for f in r.json()["fields"]} == {"kind", "extra"}
    r = c.post("/requests", content=b"x", headers={**AUTH, "Content-Type": "text/plain"})
    assert r.status_code == 415 and r.json()["error"]
    r = c.get("/requests", params={"state": "sleeping"})
    assert r.status_code == 422 and "query.state" in r.json()["error"]
    r = c.post("/generate", json={"prompt": "hi", "image": "%%%"})
    assert r.status_code == 422 and r.json()["error"] == "image: not valid base64"


def test_submit_drops_the_request_into_the_inbox(server):
    api, _, _, workdir = server
    doc = {**GOOD, "target": {"name": "Submitted Person"}}
    r = api.client.post("/requests", json=doc, headers=AUTH)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["request_id"].startswith("req-") and r.headers["location"].endswith(
        body["request_id"]
    )
    dropped = workdir / "inbox" / "new" / body["inbox_name"]
    assert json.loads(dropped.read_text()) == doc  # the body as sent: the intake validates it


def test_rollback_through_the_api_shows_in_unlearnd_history(server, monkeypatch):
    api, store, ids, workdir = server
    r = api.client.post(
        "/rollback",
        json={"to": ids["base"], "why": "r1 broke answers", "who": "alice"},
        headers=AUTH,
    )
    assert r.status_code == 200, r.text
    assert r.json()["to_version"] == ids["base"] and store.get_alias("live") == ids["base"]
    again = api.client.post("/rollback", json={"to": ids["base"], "why": "x"}, headers=AUTH)
    assert again.status_code == 409 and "already points" in again.json()["error"]
    gated = api.client.post("/rollback", json={"to": ids["gated"], "why": "x"}, headers=AUTH)
    assert gated.status_code == 409 and "did not pass its gate" in gated.json()["error"]

    monkeypatch.setenv("UNLEARND_WORKDIR", str(workdir))
    result = CliRunner().invoke(cli_app, ["history", "--json"])
    assert result.exit_code == 0, result.output
    last = json.loads(result.output)[-1]
    assert (last["from_version"], last["to_version"]) == (ids["head"], ids["base"])
    assert last["why"] == "r1 broke answers" and last["who"] == "alice (api 127.0.0.1)"

    # ... and back, so the module's other tests see the head live again.
    back = api.client.post("/rollback", json={"to": ids["head"], "why": "fixed"}, headers=AUTH)
    assert back.status_code == 200 and store.get_alias("live") == ids["head"]


def test_metrics_parse(server):
    api, store, _, _ = server
    r = api.client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }
    assert samples[("unlearnd_registry_up", ())] == 1
    assert samples[("unlearnd_queue_depth", ())] == 0
    assert samples[("unlearnd_jobs", (("state", "done"),))] == 0
    assert samples[("unlearnd_gate_results_total", (("result", "passed"),))] == 2
    assert samples[("unlearnd_gate_results_total", (("result", "failed"),))] == 1
    assert samples[("unlearnd_live_version", ())] == store.get_alias("live")
    assert ("unlearnd_job_duration_seconds_count", (("state", "done"),)) in samples
    # What the live version's doors answer instead of the facts (evaluation/behaviour.py).
    shares = {labels[1][1]: v for (name, labels), v in samples.items()
              if name == "unlearnd_alias_answers" and labels[0] == ("alias", "live")}  # fmt: skip
    assert shares == {"refused": 0.75, "degenerate": 0, "hallucinated": 0.25, "informative": 0}


def png_base64() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), "blue").save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_generate_through_the_gate_and_classify_refused_on_llava(server):
    api, store, ids, _ = server
    r = api.client.post(
        "/generate",
        json={
            "prompt": "where does this person live ?",
            "image": png_base64(),
            "max_new_tokens": 8,
        },
    )
    assert r.status_code == 200, r.text + api.output()
    answer = r.json()
    assert answer["version"] == store.get_alias("live") and isinstance(answer["text"], str)
    assert "routing" in answer
    r = api.client.post("/generate", json={"prompt": "hi", "version": 999})
    assert r.status_code == 404 and "999" in r.json()["error"]
    r = api.client.post("/classify", json={"image": png_base64(), "labels": ["cat", "dog"]})
    assert r.status_code == 409 and "CLIP" in r.json()["error"]


def test_revert_through_the_api(server):
    """A revert that changes something: r5 adds an adapter and an expert, r6 retrains the
    expert. Reverting r5 needs r6 replayed first (202, a revert job the daemon runs);
    reverting r6, the last, commits at once. Live goes back to the module's head after."""
    api, store, ids, _ = server
    passed = {"gate": {"passed": True, "failed": []}}
    head = store.get_alias("live")
    e5, adapter, e6 = (blob(store, seed) for seed in (5.0, 6.0, 7.0))
    chain = [head]
    for name, experts, artifacts in (("r5", {"e": e5}, {"adapter:r5": adapter}),
                                     ("r6", {"e": e6}, {"adapter:r5": adapter})):  # fmt: skip
        add_request(store, name)
        new = version(store, parent=chain[-1], request_id=name, method="refuser",
                      experts=experts, artifacts=artifacts, metrics=passed)  # fmt: skip
        store.move_alias("live", new.id, expected_from=chain[-1], who="worker", why=name)
        chain.append(new.id)
    missing = api.client.post("/requests/nope/revert", json={"why": "x"}, headers=AUTH)
    assert missing.status_code == 404 and "nope" in missing.json()["error"]

    queued = api.client.post("/requests/r5/revert", json={"why": "withdrawn"}, headers=AUTH)
    assert queued.status_code == 202, queued.text
    body = queued.json()
    assert body["committed"] is False and body["plan"]["replay"] == ["r6"]
    assert body["job"]["kind"] == "revert" and body["job"]["state"] == "queued"
    shown = api.client.get("/requests/r5").json()
    assert shown["state"] == "reverting" and shown["jobs"][-1]["id"] == body["job"]["id"]
    again = api.client.post("/requests/r5/revert", json={"why": "twice"}, headers=AUTH)
    assert again.status_code == 202 and again.json()["job"]["id"] == body["job"]["id"]
    metrics = {(s.name, tuple(sorted(s.labels.items()))): s.value for family in
               text_string_to_metric_families(api.client.get("/metrics").text)
               for s in family.samples}  # fmt: skip
    assert metrics[("unlearnd_jobs_by_kind", (("kind", "revert"), ("state", "queued")))] == 1
    assert store.get_alias("live") == chain[-1]  # nothing moves before the daemon's replay

    r = api.client.post("/requests/r6/revert", json={"why": "r6 withdrawn"}, headers=AUTH)
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["committed"] is True and done["version"]["kind"] == "revert"
    manifest = done["version"]["manifest"]
    assert manifest["experts"] == {"e": e5} and manifest["artifacts"] == {"adapter:r5": adapter}
    assert store.get_alias("live") == done["version"]["id"]
    assert store.alias_history("live")[-1].why == "r6 withdrawn"
    store.move_alias("live", head, expected_from=done["version"]["id"], who="test", why="reset")


def test_openai_chat_completions_with_an_image(server, tmp_path):
    """The official client (`openai`), as a platform's code calls it, against the process."""
    from openai import OpenAI

    api, store, _, _ = server
    png = png_base64()
    same = api.client.post("/generate", json={"prompt": "who is this person ?", "image": png})
    client = OpenAI(base_url=f"{api.url}/v1", api_key="unused", max_retries=0)
    chat = client.chat.completions.create(
        model="live",
        messages=[
            {"role": "system", "content": "You are a helpful assistant."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "who is this person ?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
                ],
            },
        ],  # fmt: skip
        max_tokens=32,
    )
    assert chat.object == "chat.completion" and chat.model == str(store.get_alias("live"))
    assert chat.choices[0].message.content == same.json()["text"]
    assert chat.usage.completion_tokens > 0 and chat.choices[0].finish_reason == "stop"
    assert {m.id for m in client.models.list().data} >= {"live", str(store.get_alias("live"))}

    # A local file is opened for the token's holder only; the answer is the same.
    path = tmp_path / "face.png"
    path.write_bytes(base64.b64decode(png))
    body = {"model": "live", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "who is this person ?"},
        {"type": "image_url", "image_url": {"url": str(path)}}]}]}  # fmt: skip
    assert api.client.post("/v1/chat/completions", json=body).status_code == 401
    r = api.client.post("/v1/chat/completions", json=body, headers=AUTH)
    assert (
        r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == same.json()["text"]
    )

    for change, status, needle in [
        ({"stream": True}, 422, "stream"),
        ({"model": "nope"}, 404, "no such alias"),
        ({"messages": [{"role": "system", "content": "hi"}]}, 422, "no user message"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "who ?"},
                            {
                                "type": "image_url",
                                "image_url": {"url": "https://example.com/a.png"},
                            },
                        ],
                    }
                ]
            },
            422,
            "remote URLs",
        ),  # fmt: skip
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "who ?"},
                            {
                                "type": "image_url",
                                "image_url": {"url": "data:image/png;base64,%%%"},
                            },
                        ],
                    }
                ]
            },
            422,
            "image_url: not valid base64",
        ),  # fmt: skip
    ]:
        r = api.client.post("/v1/chat/completions", json={**body, **change}, headers=AUTH)
        assert r.status_code == status and needle in r.json()["error"], (change, r.text)


def test_the_api_process_reads_the_base_folder_once(server):
    from unlearnd.api.state import ModelCache

    _, store, ids, workdir = server
    cache = ModelCache(Settings(workdir=workdir))
    for version_id in (ids["head"], ids["base"], ids["head"]):
        cache.get(store, version_id)
    assert cache.deployment.base_loads == 1
