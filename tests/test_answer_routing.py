"""routing.visual_vector = "answer_distribution": a refuser request routed on what the model is
about to say (bench/pacs.py measures why: on PACS, tower features group pictures by style)."""

from __future__ import annotations

import pytest
from routing_world import WorldDeployment

from unlearnd.routing.tasks import load_tasks
from unlearnd.serving import Deployment, load_version


def test_a_deletion_routed_on_answer_distributions_refuses_and_keeps_the_rest(tmp_path):
    d = WorldDeployment(tmp_path)
    d.settings.routing.visual_vector = "answer_distribution"
    deployment = Deployment(d.settings)
    pid = d.world.forget_pids[0]
    request_id = d.delete("first", pid)
    assert d.store.get_request(request_id).state == "committed"
    version = d.store.get_version(d.store.get_alias("live"))
    (task,) = load_tasks(version.manifest, d.store.artifacts)
    fam = deployment.load_base()
    assert task.visual_vector == "answer_distribution"
    assert task.visual.shape[1] == fam.model.config.text_config.vocab_size

    model = load_version(deployment, d.store, version.id)
    base = load_version(deployment, d.store, None)
    assert d.crr(model, pid) >= 0.75  # unseen portraits of the forgotten person
    kept = d.world.retain_pids[:12]
    assert d.accuracy(model, "seen_qa", kept) >= 0.95 * d.accuracy(base, "seen_qa", kept)

    # Its concepts are answer states: a deployment switched back cannot route them.
    d.settings.routing.visual_vector = "vision_tower"
    with pytest.raises(ValueError, match="routed on answer_distribution vectors"):
        load_version(Deployment(d.settings), d.store, version.id)
