"""Opt-in CSV formula escaping (OWASP CSV Injection): text cells only, byte-faithful by default."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowsync_provider.core.csvio import (
    CsvStreamWriter,
    csv_preview,
    csv_text,
    escape_formula,
    format_row,
    sample,
    write_csv,
)
from flowsync_provider.core.schemas import CAMPAIGNS_COLUMNS, FLOWS_COLUMNS, SUBSCRIBERS_COLUMNS


@pytest.mark.parametrize(
    ("cell", "escaped"),
    [
        ('=HYPERLINK("https://evil.example/","x")', '\'=HYPERLINK("https://evil.example/","x")'),
        ("+1+1", "'+1+1"),
        ("-5% off", "'-5% off"),  # OWASP: '-' too, in text
        ("@SUM(1+1)", "'@SUM(1+1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("Welcome = hello", "Welcome = hello"),  # only the first character matters
        ("", ""),
        ("'=already", "'=already"),  # idempotent: an escaped cell is not escaped twice
        (" =x", " =x"),
    ],
)
def test_escape_formula(cell: str, escaped: str) -> None:
    assert escape_formula(cell) == escaped
    assert escape_formula(escape_formula(cell)) == escaped


FLOW_ROW = {"Day": "2025-09-01", "Flow ID": "F1", "Flow Name": "=HYPERLINK(\"x\")", "Flow Message ID": "M1",
            "Flow Message Name": "-10% off", "Flow Message Channel": "email", "Status": "live",
            "Delivered": 3, "Revenue": -1.5, "Revenue per Recipient": "-0.5", "Tags": "@VIP"}


def test_text_columns_are_escaped_and_numeric_columns_never() -> None:
    plain = format_row(FLOWS_COLUMNS, FLOW_ROW)
    escaped = format_row(FLOWS_COLUMNS, FLOW_ROW, escape_formulas=True)
    by_name = dict(zip(FLOWS_COLUMNS, escaped, strict=True))
    assert by_name["Flow Name"] == "'=HYPERLINK(\"x\")"
    assert by_name["Flow Message Name"] == "'-10% off"
    assert by_name["Tags"] == "'@VIP"
    assert by_name["Revenue"] == "-1.50" and by_name["Revenue per Recipient"] == "-0.50"  # numbers stay numbers
    assert by_name["Day"] == "2025-09-01" and by_name["Delivered"] == "3"
    changed = {c for c, a, b in zip(FLOWS_COLUMNS, plain, escaped, strict=True) if a != b}
    assert changed == {"Flow Name", "Flow Message Name", "Tags"}


def test_default_is_byte_faithful_and_the_flag_reaches_every_csv_path(tmp_path: Path) -> None:
    rows = [FLOW_ROW]
    assert ',"=HYPERLINK(""x"")",M1,-10% off,' in csv_text(FLOWS_COLUMNS, rows)
    escaped = csv_text(FLOWS_COLUMNS, rows, escape_formulas=True)
    assert ",\"'=HYPERLINK(\"\"x\"\")\",M1,'-10% off," in escaped
    assert escaped.endswith(",-1.50,-0.50,0.000000,0.000000,0.000000,'@VIP\n")
    assert csv_preview(FLOWS_COLUMNS, rows, escape_formulas=True) == escaped
    write_csv(tmp_path / "a.csv", FLOWS_COLUMNS, rows)
    write_csv(tmp_path / "b.csv", FLOWS_COLUMNS, rows, escape_formulas=True)
    with CsvStreamWriter(tmp_path / "c.csv", FLOWS_COLUMNS, escape_formulas=True) as writer:
        writer.write_rows(rows)
    assert (tmp_path / "a.csv").read_text() == csv_text(FLOWS_COLUMNS, rows)
    assert (tmp_path / "b.csv").read_text() == escaped == (tmp_path / "c.csv").read_text()
    # JSON objects (sample, json files) are not spreadsheets: verbatim
    assert sample(FLOWS_COLUMNS, rows)[0]["Flow Name"] == '=HYPERLINK("x")'


def test_campaign_and_subscriber_text_columns() -> None:
    campaign = {"Campaign Name": "=SUM(1,1) Sale", "Recipients": 10, "Unsubscribes": 0, "Subject": "+win"}
    cells = dict(zip(CAMPAIGNS_COLUMNS, format_row(CAMPAIGNS_COLUMNS, campaign, escape_formulas=True), strict=True))
    assert cells["Campaign Name"] == "'=SUM(1,1) Sale" and cells["Subject"] == "'+win"
    assert cells["Recipients"] == "10"
    person = {"Email": "+tag@example.com", "First Name": "=cmd", "Last Name": "@x",
              "Can Receive Email Marketing": True}
    cells = dict(zip(SUBSCRIBERS_COLUMNS, format_row(SUBSCRIBERS_COLUMNS, person, escape_formulas=True), strict=True))
    assert (cells["Email"], cells["First Name"], cells["Last Name"]) == ("'+tag@example.com", "'=cmd", "'@x")
    assert cells["Can Receive Email Marketing"] == "true"
