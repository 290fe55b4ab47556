"""Cells for CSV files that people open in a spreadsheet (CSV or formula injection).

Excel, LibreOffice and Google Sheets run a cell that starts with `=`, `+`, `-` or `@` as a
formula (`=cmd|' /C calc'!A0`, `=HYPERLINK(...)`), and a leading tab or carriage return can
hide such a start. A text cell that begins with one of them gets an apostrophe in front, which
the spreadsheet shows as text and does not display (OWASP "CSV Injection").

Only for human-facing reports. Numbers are written as numbers by the caller, never through
this function, so that -0.05 stays a number. Data exports that must be read back exactly
(`cli.py export`, re-imported by `cli.py import`) keep their cells verbatim.
"""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> str:
    """The text of a cell, with an apostrophe in front if a spreadsheet would run it."""
    if value is None:
        return ""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text
