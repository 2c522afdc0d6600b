"""The shipped JSON Schema is generated from the rulebook models and must not drift from them."""

import json
from pathlib import Path

from socialcredit.rulebook import json_schema, shipped_dir


def test_shipped_schema_matches_models() -> None:
    shipped = json.loads((shipped_dir() / "rulebook.schema.json").read_text(encoding="utf-8"))
    assert shipped == json_schema(), "run `make schema` to regenerate src/socialcredit/rulebooks/rulebook.schema.json"


def test_schema_names_every_layer_field() -> None:
    props = json_schema()["properties"]
    for field in ("jurisdiction", "extends", "version", "effective_from", "rules", "lists", "memory", "disclosure"):
        assert field in props
    assert Path(shipped_dir() / "rulebook.schema.json").stat().st_size > 1000
