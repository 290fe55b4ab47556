"""Documents of a request: the personal analysis report (and, later, the agreement).

Rendering is pure (no database, no clock): activities load the data and store the result.
"""

from documents.report import (
    MissingGlyphsError,
    MonthFigures,
    Person,
    PolicyRef,
    RenderedDocument,
    ReportCustomer,
    ReportData,
    render_html,
    render_report,
)

__all__ = [
    "MissingGlyphsError",
    "MonthFigures",
    "Person",
    "PolicyRef",
    "RenderedDocument",
    "ReportCustomer",
    "ReportData",
    "render_html",
    "render_report",
]
