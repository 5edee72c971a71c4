"""Reverting one request: the head's manifest minus what that request changed.

Pure functions over the version chain (head first, root last), so they are easy to test and
the SQL store only has to fetch the chain. A request's effect is the difference between its
version's manifest and its parent's: keys it added are dropped, keys it changed go back to
their value before it. A later request that changed one of those keys again lost its change
with the restore, so it is listed for replay (oldest first).
"""

from __future__ import annotations

from typing import Any

from unlearnd.registry.errors import Conflict

SECTIONS = ("experts", "artifacts")


def changed_keys(manifest: dict[str, Any], parent: dict[str, Any], section: str) -> set[str]:
    now, before = manifest.get(section) or {}, parent.get(section) or {}
    return {k for k in set(now) | set(before) if now.get(k) != before.get(k)}


def plan_revert(
    chain: list[dict[str, Any]], request_id: str, alias: str, concept_ids: list[int]
) -> dict[str, Any]:
    """`chain`: rows with id, request_id, kind, manifest; head first. Returns RevertPlan fields."""
    head = chain[0]
    position = None
    for i, row in enumerate(chain):
        if row["request_id"] == request_id and row["kind"] == "revert":
            raise Conflict(f"request {request_id!r} is already reverted in version {row['id']}")
        if row["request_id"] == request_id and row["kind"] == "deletion":
            position = i
            break
    if position is None:
        raise Conflict(
            f"request {request_id!r} is not applied in alias {alias!r} (version {head['id']})"
        )
    target = chain[position]
    before = chain[position + 1]["manifest"] if position + 1 < len(chain) else {}
    later = list(reversed(chain[:position]))  # oldest first

    manifest = {s: dict(head["manifest"].get(s) or {}) for s in SECTIONS}
    dropped: dict[str, list[str]] = {s: [] for s in SECTIONS}
    restored: dict[str, dict[str, str]] = {s: {} for s in SECTIONS}
    replay: list[str] = []
    for section in SECTIONS:
        keys = changed_keys(target["manifest"], before, section)
        for key in sorted(keys):
            old = (before.get(section) or {}).get(key)
            if old is None:
                if manifest[section].pop(key, None) is not None:
                    dropped[section].append(key)
            else:
                manifest[section][key] = old
                restored[section][key] = old
        for i, row in enumerate(later):
            parent = later[i - 1]["manifest"] if i else target["manifest"]
            touched = changed_keys(row["manifest"], parent, section) & keys
            if touched and row["kind"] == "deletion" and row["request_id"] not in replay:
                replay.append(row["request_id"])

    index_changed = target["manifest"].get("concept_index") != before.get("concept_index")
    rebuild = bool(concept_ids) or index_changed
    manifest["concept_index"] = None if rebuild else head["manifest"].get("concept_index")
    return {
        "request_id": request_id,
        "alias": alias,
        "head_version_id": head["id"],
        "reverted_version_id": target["id"],
        "manifest": manifest,
        "dropped": dropped,
        "restored": restored,
        "concepts_removed": sorted(concept_ids),
        "replay": replay,
        "rebuild_concept_index": rebuild,
    }
