"""Previous/Next and the J/K keys as a position the browser wants, never as events that can be lost.

A Streamlit button is an event: when the reader presses J twice while the page is still running the
first press, Streamlit merges the two queued "clicked" events into one, and a press is lost (issue 24:
J pressed ten times 120 ms apart with ten films open ended on another film). This small component
(``st.components.v2``, no iframe) keeps the film the reader wants in the browser: each J or K moves
that position and sends it, with a sequence number, as the component's *state*. Merged updates then
still carry the last position wanted, so the page lands on the film the keys counted to. The browser
follows the server's position again (a row click) once the server has handled every press it sent.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import streamlit as st

KEY = "film_stepper"  # the component's key in session state
HANDLED = "film_stepper_handled"  # session state: the last sequence number acted on

_HTML = """
<div class="stepper">
  <button type="button" data-step="-1" title="Previous film (K)">Previous</button>
  <button type="button" data-step="1" title="Next film (J)">Next</button>
  <span class="keys">Keys: J next, K previous. Click a row to open it.</span>
</div>
"""

_CSS = """
.stepper { display: flex; gap: 0.75rem; align-items: center; font-family: var(--st-font, sans-serif); }
.stepper button {
  flex: 0 0 9rem; padding: 0.35rem 0.75rem; border-radius: 0.5rem; cursor: pointer;
  border: 1px solid var(--st-border-color, #d6d6d9); background: var(--st-background-color, #fff);
  color: var(--st-text-color, #31333f); font-size: 0.95rem;
}
.stepper button:hover { border-color: var(--st-primary-color, #1f5fa8); color: var(--st-primary-color, #1f5fa8); }
.stepper .keys { color: var(--st-text-color, #31333f); opacity: 0.65; font-size: 0.85rem; }
"""

_JS = """
export default function (component) {
  const { data, setStateValue, parentElement } = component;
  let s = window.__filmStepper;
  if (!s || s.session !== data.session) {
    s = window.__filmStepper = { session: data.session, wanted: data.open, sent: data.handled };
    s.step = function (by) {
      if (!s.n) { return; }
      s.wanted = (((s.wanted + by) % s.n) + s.n) % s.n;
      s.sent += 1;
      s.send("wanted", { index: s.wanted, seq: s.sent });
    };
    if (!window.__filmStepperKeys) {
      window.__filmStepperKeys = true;
      document.addEventListener("keydown", function (e) {
        const t = e.target, tag = t && t.tagName ? t.tagName.toLowerCase() : "";
        if (e.ctrlKey || e.metaKey || e.altKey) { return; }
        if (tag === "input" || tag === "textarea" || tag === "select" || (t && t.isContentEditable)) { return; }
        const key = (e.key || "").toLowerCase();
        const stepper = window.__filmStepper;
        if (!stepper || (key !== "j" && key !== "k")) { return; }
        e.preventDefault();
        e.stopPropagation();
        stepper.step(key === "j" ? 1 : -1);
      }, true);
    }
  }
  s.n = data.n;
  s.send = setStateValue;
  if (data.handled >= s.sent) {  // the server has acted on every press sent: follow it (a row click)
    s.wanted = data.open;
    s.sent = data.handled;
  }
  parentElement.querySelectorAll("button[data-step]").forEach(function (b) {
    b.onclick = function () { s.step(Number(b.dataset.step)); };
  });
}
"""

_stepper = st.components.v2.component("film_stepper", html=_HTML, css=_CSS, js=_JS)


def wanted_position() -> int | None:
    """The position the browser asked for, if it sent a press the server has not acted on yet."""
    state = st.session_state.get(KEY)
    wanted = state.get("wanted") if state is not None and hasattr(state, "get") else None
    if not isinstance(wanted, dict) or int(wanted.get("seq", 0)) <= st.session_state.get(HANDLED, 0):
        return None
    st.session_state[HANDLED] = int(wanted["seq"])
    return int(wanted.get("index", 0))


def film_stepper(count: int, open_at: int, on_step: Callable[[], None]) -> None:
    """Previous/Next buttons and J/K over ``count`` films, ``open_at`` the one open now; ``on_step`` runs
    (before the page's run) when the browser sends a new position (read it with :func:`wanted_position`)."""
    session = st.session_state.setdefault("film_stepper_session", uuid.uuid4().hex)
    _stepper(
        key=KEY,
        data={"n": count, "open": open_at, "handled": st.session_state.get(HANDLED, 0), "session": str(session)},
        on_wanted_change=on_step,
    )
