"""Text that came from a user, a file name, a DICOM tag or a PACS, made safe to show or export.

``markdown_literal`` is the one way such text reaches Streamlit Markdown (``st.markdown``, ``st.write``
of a string, captions, labels, table cells shown as Markdown): every ASCII punctuation character is
backslash-escaped (CommonMark lets any of them be escaped), so no image, link, emphasis, heading, HTML
tag, math or Streamlit directive (``:red[...]``) is made of it, and line breaks and other control
characters become spaces, so the text stays on its line.

``csv_cell`` and ``csv_safe_frame`` neutralise spreadsheet formulas (CSV injection, OWASP): a text cell
that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading apostrophe, so a
spreadsheet shows it as text instead of running it; control characters inside become spaces.
"""

from __future__ import annotations

import re
import string
from typing import Any

import pandas as pd

_PUNCTUATION = re.compile("([" + re.escape(string.punctuation) + "])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def plain_text(text: Any) -> str:
    """``text`` as one line: control characters (tab, CR, LF, NUL ...) replaced by a space."""
    return _CONTROL.sub(" ", "" if text is None else str(text))


def markdown_literal(text: Any) -> str:
    """``text`` for Streamlit Markdown, shown exactly as written: nothing in it is rendered or fetched."""
    return _PUNCTUATION.sub(r"\\\1", plain_text(text))


def csv_cell(value: Any) -> Any:
    """A text value that a spreadsheet would run as a formula, prefixed with ``'``, and on one line (a bare
    CR would split the row in some readers); anything else as it is."""
    if not isinstance(value, str):
        return value
    return plain_text("'" + value if value.startswith(FORMULA_STARTS) else value)


def csv_safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells (and column names) cannot start a spreadsheet formula."""
    safe = frame.copy()
    for column in safe.columns:
        if safe[column].dtype == object or pd.api.types.is_string_dtype(safe[column]):
            safe[column] = safe[column].map(csv_cell)
    safe.columns = [csv_cell(str(name)) for name in safe.columns]
    return safe
