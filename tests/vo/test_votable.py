"""The result-table writer (``vo.votable``): VOTable 1.4 valid against its schema, CSV
with the same columns, nulls as empty cells."""

from __future__ import annotations

import csv
import io

import pytest
from astropy.io.votable import parse_single_table

from tests.conftest import assert_valid
from vo.votable import TableColumn, csv_text, votable_bytes

COLUMNS = (
    TableColumn("label", description="spectrum"),
    TableColumn("node", "int"),
    TableColumn("distance", "double", unit="m", ucd="stat.value"),
    TableColumn("ok", "boolean"),
)
ROWS = [
    {"label": "ivo://vocloud.local/vocloud?1", "node": 3, "distance": 0.25, "ok": True},
    {"label": "a<b & \"c\"", "node": None, "distance": float("nan"), "ok": False},
]


def test_votable_is_valid_and_reads_back() -> None:
    data = votable_bytes(COLUMNS, ROWS, name="assignments", description="test",
                         infos={"rows": "10"})
    assert_valid(data, "VOTable-1.4.xsd")
    table = parse_single_table(io.BytesIO(data)).to_table()
    assert table.colnames == ["label", "node", "distance", "ok"]
    assert table["label"][1] == 'a<b & "c"'
    assert table["node"][0] == 3 and table["node"].mask[1]
    assert str(table["distance"].unit) == "m"
    assert table["distance"][0] == 0.25


def test_csv_has_the_same_columns_and_empty_nulls() -> None:
    rows = list(csv.reader(io.StringIO(csv_text(COLUMNS, ROWS))))
    assert rows[0] == ["label", "node", "distance", "ok"]
    assert rows[1] == ["ivo://vocloud.local/vocloud?1", "3", "0.25", "true"]
    assert rows[2] == ['a<b & "c"', "", "", "false"]


def test_unknown_datatype_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown VOTable datatype"):
        TableColumn("x", "string")
