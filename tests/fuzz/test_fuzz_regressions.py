"""Inputs the fuzzers found that crashed a parser: each now gets its named error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ivr.nlu.evaluation import DatasetError, load_dataset


def test_eval_json_split_that_is_not_a_list(tmp_path: Path) -> None:
    """{"test": null} was a TypeError; now a DatasetError naming the split."""
    p = tmp_path / "data.json"
    p.write_text(json.dumps({"test": None}), encoding="utf-8")
    with pytest.raises(DatasetError, match="split 'test' is not a list"):
        load_dataset(p, ["test"])
