"""CSV contracts: exact headers, the formatting table (HALF_UP on the float's repr), the one writer."""

from __future__ import annotations

import os
import random
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from flowsync_provider.core import csvio
from flowsync_provider.core.schemas import (
    CAMPAIGN_STATISTICS,
    CAMPAIGNS_COLUMNS,
    COLUMN_KINDS,
    COLUMN_STATISTICS,
    FLOW_STATISTICS,
    FLOWS_COLUMNS,
    SUBSCRIBERS_COLUMNS,
    format_value,
)

FLOWS_HEADER = ("Day,Flow ID,Flow Name,Flow Message ID,Flow Message Name,Flow Message Channel,Status,Delivered,"
                "Unique Opens,Open Rate,Unique Clicks,Click Rate,Placed Order,Placed Order Rate,Revenue,"
                "Revenue per Recipient,Unsub Rate,Complaint Rate,Bounce Rate,Tags")
CAMPAIGNS_HEADER = ("Campaign ID,Campaign Name,Campaign Message ID,Channel,Send Time,Send Day,Status,Subject,"
                    "Audiences,Recipients,Delivered,Unique Opens,Open Rate,Unique Clicks,Click Rate,Placed Order,"
                    "Placed Order Rate,Revenue,Revenue per Recipient,Unsubscribes,Unsub Rate,Complaint Rate,"
                    "Bounce Rate,Tags")
SUBSCRIBERS_HEADER = ("Profile ID,Email,First Name,Last Name,Created,Updated,Email Marketing Consent,"
                      "Consent Timestamp,Can Receive Email Marketing,Suppression Reason,Lists")


def test_exact_headers() -> None:
    assert ",".join(FLOWS_COLUMNS) == FLOWS_HEADER
    assert ",".join(CAMPAIGNS_COLUMNS) == CAMPAIGNS_HEADER
    assert ",".join(SUBSCRIBERS_COLUMNS) == SUBSCRIBERS_HEADER
    assert csvio.csv_text(FLOWS_COLUMNS, []) == FLOWS_HEADER + "\n"


def test_statistics_mapping_covers_every_metric_column() -> None:
    for columns, requested in ((FLOWS_COLUMNS, FLOW_STATISTICS), (CAMPAIGNS_COLUMNS, CAMPAIGN_STATISTICS)):
        numeric = [c for c in columns if COLUMN_KINDS.get(c) in {"count", "rate", "money"}]
        assert numeric, columns
        for column in numeric:
            assert COLUMN_STATISTICS[column] in requested, column
    assert CAMPAIGN_STATISTICS == FLOW_STATISTICS + ("unsubscribe_uniques",)
    assert COLUMN_STATISTICS["Placed Order"] == "conversion_uniques"
    assert COLUMN_STATISTICS["Revenue"] == "conversion_value"


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("Open Rate", 0.1234565, "0.123457"),      # HALF_UP on the repr, not on the binary value
        ("Open Rate", 0.1234564999, "0.123456"),
        ("Open Rate", 1, "1.000000"),
        ("Open Rate", None, "0.000000"),
        ("Open Rate", float("nan"), "0.000000"),
        ("Open Rate", -0.0000001, "0.000000"),     # never "-0.000000"
        ("Revenue", 2.675, "2.68"),                # binary 2.67499999... would round down
        ("Revenue", 1.005, "1.01"),
        ("Revenue", 10, "10.00"),
        ("Revenue", "12.345", "12.35"),
        ("Revenue", None, "0.00"),
        ("Revenue per Recipient", 0.125, "0.13"),
        ("Delivered", 12.0, "12"),
        ("Delivered", 2.5, "3"),
        ("Delivered", None, "0"),
        ("Delivered", "garbage", "0"),
        ("Unsubscribes", 7, "7"),
        ("Can Receive Email Marketing", True, "true"),
        ("Can Receive Email Marketing", False, "false"),
        ("Can Receive Email Marketing", None, ""),
        ("Day", date(2025, 3, 9), "2025-03-09"),
        ("Day", "2025-03-09", "2025-03-09"),
        ("Flow Name", None, ""),
        ("Flow Name", "Welcome, new friend", "Welcome, new friend"),
    ],
)
def test_formatting_table(column: str, value: object, expected: str) -> None:
    assert format_value(column, value) == expected


def test_minimal_quoting_and_newlines() -> None:
    row = {"Flow Name": 'He said "hi", then left', "Tags": "a;b", "Delivered": 3}
    text = csvio.csv_text(["Flow Name", "Tags", "Delivered"], [row])
    assert text == 'Flow Name,Tags,Delivered\n"He said ""hi"", then left",a;b,3\n'
    assert "\r" not in text


def _rows(n: int) -> list[dict]:
    return [{"Day": f"2025-09-{d:02d}", "Flow ID": f"F{i}", "Flow Name": "Naïve — flow", "Delivered": i * d,
             "Open Rate": i / (d + 7), "Revenue": i * 1.1} for d in range(1, 4) for i in range(n)]


def test_write_csv_atomic_and_identical_to_csv_text(tmp_path: Path) -> None:
    path = tmp_path / "out" / "flows.csv"
    rows = _rows(5)
    assert csvio.write_csv(path, FLOWS_COLUMNS, rows) == 15
    data = path.read_bytes()
    assert data == csvio.csv_text(FLOWS_COLUMNS, rows).encode("utf-8")
    assert data.startswith(FLOWS_HEADER.encode() + b"\n") and data.endswith(b"\n")
    assert "Naïve — flow".encode() in data
    assert [p.name for p in path.parent.iterdir()] == ["flows.csv"]  # no temp file left


def test_stream_writer_aborts_on_error_and_keeps_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "subscribers.csv"
    csvio.write_csv(path, SUBSCRIBERS_COLUMNS, [{"Profile ID": "P0"}])
    before = path.read_bytes()

    def rows():
        yield {"Profile ID": "P1"}
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        with csvio.CsvStreamWriter(path, SUBSCRIBERS_COLUMNS) as writer:
            writer.write_rows(rows())
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["subscribers.csv"]

    with csvio.CsvStreamWriter(path, SUBSCRIBERS_COLUMNS) as writer:
        for i in range(3):
            writer.write_row({"Profile ID": f"P{i}", "Can Receive Email Marketing": i % 2 == 0})
    assert writer.rows_written == 3
    lines = path.read_text().splitlines()
    assert lines[0] == SUBSCRIBERS_HEADER and lines[1] == "P0,,,,,,,,true,,"
    with pytest.raises(RuntimeError):
        writer.write_row({"Profile ID": "late"})


def test_preview_and_sample() -> None:
    rows = _rows(4)
    preview = csvio.csv_preview(FLOWS_COLUMNS, iter(rows), n=2)
    assert preview.splitlines()[0] == FLOWS_HEADER and len(preview.splitlines()) == 3
    assert preview == csvio.csv_text(FLOWS_COLUMNS, rows[:2])
    sample = csvio.sample(FLOWS_COLUMNS, rows, n=3)
    assert len(sample) == 3 and list(sample[0]) == list(FLOWS_COLUMNS)
    assert sample[1]["Open Rate"] == "0.125000" and sample[1]["Revenue"] == "1.10"


def test_write_json_sorted_and_atomic(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    csvio.write_json(path, {"b": 1, "a": {"d": date(2025, 1, 2), "c": Decimal("1.50")}, "z": ("x",)})
    assert path.read_text() == ('{\n  "a": {\n    "c": "1.50",\n    "d": "2025-01-02"\n  },\n  "b": 1,\n'
                                '  "z": [\n    "x"\n  ]\n}\n')
    with pytest.raises(TypeError):
        csvio.write_json(path, {"bad": object()})
    assert sorted(os.listdir(tmp_path)) == ["summary.json"]


def test_shuffled_rows_through_sort_give_identical_bytes() -> None:
    rows = _rows(6)
    shuffled = rows[:]
    random.Random(3).shuffle(shuffled)
    key = lambda r: (r["Day"], r["Flow ID"])  # noqa: E731
    assert csvio.csv_text(FLOWS_COLUMNS, sorted(shuffled, key=key)) == csvio.csv_text(
        FLOWS_COLUMNS, sorted(rows, key=key))
