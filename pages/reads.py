"""The reader's reads of the open batch: saved in this session, or found in the audit trail (another
session, another day), so a film the worklist marks "Reviewed" opens with the read that was saved."""

from __future__ import annotations

import streamlit as st

from pages import resources
from pneumonia.audit import AuditUnavailable
from pneumonia.insight.report import ReaderReview

SESSION_REVIEWS = "saved_reviews"  # session state: image SHA-256 -> ReaderReview saved in this session
AUDIT_ROWS_SEARCHED = 5000  # the newest audit rows searched for an earlier read of an open image


def session_reviews() -> dict[str, ReaderReview]:
    return st.session_state.setdefault(SESSION_REVIEWS, {})


def earlier_reviews(image_sha256s: set[str]) -> dict[str, ReaderReview]:
    """The newest saved read of each of these images in the audit trail (the accession is never stored)."""
    if not image_sha256s:
        return {}
    try:
        rows = resources.audit_log().recent(AUDIT_ROWS_SEARCHED)
    except AuditUnavailable as error:
        st.warning(str(error))
        return {}
    rows = rows[rows["image_sha256"].isin(image_sha256s)].drop_duplicates("image_sha256")  # newest first
    return {
        row.image_sha256: ReaderReview(str(row.reader), bool(row.reader_agrees), str(row.comment or ""), "")
        for row in rows.itertuples()
    }


def reviews_of(image_sha256s: list[str], reviewed: set[str]) -> dict[str, ReaderReview]:
    """This session's reads, and for images reviewed elsewhere the audit trail's newest read."""
    mine = session_reviews()
    elsewhere = earlier_reviews({s for s in image_sha256s if s in reviewed and s not in mine})
    return {**elsewhere, **{s: mine[s] for s in image_sha256s if s in mine}}


def review_of(image_sha256: str) -> tuple[ReaderReview | None, bool]:
    """The read of one image and whether it was saved in an earlier session (found in the audit trail)."""
    mine = session_reviews().get(image_sha256)
    if mine is not None:
        return mine, False
    if image_sha256 not in resources.audit_log_reviewed([image_sha256]):
        return None, False
    earlier = earlier_reviews({image_sha256}).get(image_sha256)
    return earlier, earlier is not None
