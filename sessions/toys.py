"""Where built-in toy checkpoints live on disk: trained ones ship in the package; random ones are
built once into the user cache, then reused."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from analyses.errors import BadInput
from analyses.toys import RANDOM_TOYS, SHIPPED, toy_names

BUILD_VERSION = 1  # bump when build_checkpoint changes what it writes


def cache_root() -> Path:
    base = os.environ.get("WORKBENCH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "workbench"
    )
    return Path(base) / "toys"


def toy_checkpoint(name: str) -> Path:
    """The directory of built-in toy ``name``."""
    if (SHIPPED / name / "config.json").is_file():
        return SHIPPED / name
    if name in RANDOM_TOYS:
        return _random_toy(name)
    if name in toy_names():
        raise BadInput(f"toy:{name} is not shipped with this install; `workbench train {name} --out DIR` builds it")
    raise BadInput(f"unknown toy {name!r}; built-in toys: {', '.join('toy:' + t for t in toy_names())}")


def _random_toy(name: str) -> Path:
    """Built on first use, atomically, so two processes racing to build it both end up with a
    complete checkpoint."""
    toy = RANDOM_TOYS[name]
    key = json.dumps([BUILD_VERSION, toy.family, toy.shape, toy.seed], sort_keys=True)
    path = cache_root() / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"
    if (path / "config.json").is_file():
        return path
    from analyses.toys.checkpoints import build_checkpoint

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{name}-"))
    try:
        build_checkpoint(tmp, toy.family, seed=toy.seed, **toy.shape)
        try:
            tmp.rename(path)
        except OSError:  # another process finished first
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path
