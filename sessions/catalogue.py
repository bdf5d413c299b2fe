"""What `workbench models` lists: the built-in toys and the models in the local HF cache."""

from __future__ import annotations

import json
from pathlib import Path

from analyses.models import FAMILIES
from analyses.toys import RANDOM_TOYS, SHIPPED
from analyses.toys.recipes import RECIPES


def list_models() -> list[dict]:
    models = [
        {"spec": f"toy:{name}", "kind": "toy", "family": r.family, "supported": True,
         "about": r.about + ("" if (SHIPPED / name / "config.json").is_file() else " (not shipped: workbench train)")}
        for name, r in RECIPES.items()
    ]
    models += [
        {"spec": f"toy:{name}", "kind": "toy", "family": toy.family, "supported": True, "about": toy.about}
        for name, toy in RANDOM_TOYS.items()
    ]
    return models + _cached_hub_models()


def _cached_hub_models() -> list[dict]:
    try:
        from huggingface_hub import scan_cache_dir

        repos = scan_cache_dir().repos
    except Exception:  # no cache dir yet, or an unreadable one: nothing cached to list
        return []
    out = []
    for repo in sorted(repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model" or not repo.revisions:
            continue
        snapshot = max(repo.revisions, key=lambda r: r.last_modified).snapshot_path
        model_type = _model_type(Path(snapshot))
        if model_type is None:
            continue
        out.append({
            "spec": repo.repo_id,
            "kind": "hub-cache",
            "family": model_type,
            "supported": model_type in FAMILIES,
            "about": f"{repo.size_on_disk / 2**20:.0f} MiB in the local Hugging Face cache",
        })
    return out


def _model_type(snapshot: Path) -> str | None:
    try:
        return json.loads((snapshot / "config.json").read_text()).get("model_type")
    except (OSError, ValueError):
        return None
