"""Prompt-pair files: JSONL, one ``{"clean", "corrupt", "answer", "distractor"}`` object a line,
so analysts bring their own pairs. A malformed line is an error naming the line."""

from __future__ import annotations

import json
from pathlib import Path

from analyses.errors import BadInput
from analyses.preparation import step
from analyses.tasks.base import Pair

FIELDS = ("clean", "corrupt", "answer", "distractor")


def read_pairs(path: str | Path) -> list[Pair]:
    try:
        lines = Path(path).read_text(encoding="utf-8-sig").splitlines()  # tolerate a BOM
    except OSError as e:
        raise BadInput(f"{path}: cannot read the pair file ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise BadInput(f"{path}: the pair file is not UTF-8 text (byte {e.start}); "
                       "save it as UTF-8 JSONL") from None
    pairs = []
    for number, line in enumerate(lines, 1):
        step(number, len(lines), "reading the pairs file")
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise BadInput(f"{path}:{number}: not valid JSON ({e.msg})") from None
        if not isinstance(obj, dict):
            raise BadInput(f"{path}:{number}: expected a JSON object with {', '.join(FIELDS)}")
        missing = [f for f in FIELDS if not isinstance(obj.get(f), str) or not obj[f]]
        if missing:
            raise BadInput(f"{path}:{number}: missing or empty string field(s): {', '.join(missing)}")
        pairs.append(Pair(*(obj[f] for f in FIELDS), variant=str(obj.get("variant", "")), line=number))
    if not pairs:
        raise BadInput(f"{path}: no prompt pairs in the file")
    return pairs


def write_pairs(path: str | Path, pairs: list[Pair]) -> None:
    with Path(path).open("w", encoding="utf-8") as f:
        for p in pairs:
            f.write(json.dumps({"clean": p.clean, "corrupt": p.corrupt, "answer": p.answer,
                                "distractor": p.distractor, "variant": p.variant}) + "\n")
