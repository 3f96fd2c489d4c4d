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


def test_agi_protocol_errors_do_not_echo_caller_data() -> None:
    """A bad environment or response line is named, its value (a caller's name or
    number, which would reach the logs) is not repeated."""
    from ivr.telephony.agi.protocol import AgiProtocolError, parse_environment, parse_response

    with pytest.raises(AgiProtocolError) as err:
        parse_environment(["agi_request: agi://x/route", "calleridname: Anna de Vries"])
    assert "Anna" not in str(err.value) and "calleridname" in str(err.value)
    with pytest.raises(AgiProtocolError) as err:
        parse_response("garbage from Anna de Vries +31612345678")
    assert "Anna" not in str(err.value) and "612345678" not in str(err.value)
