"""Window/level by dragging on the film with the right mouse button, as PACS viewers do: left and right
change the window (width), up and down the level (centre). While dragging, the film's new contrast
shows at once (a CSS filter) with the values beside the pointer; on release the page applies the
window/level to the film's own pixels, through the same sliders the reader can also use.
(A left drag still pans and the wheel zooms.)
"""

from __future__ import annotations

import streamlit as st

LEVEL, WINDOW = "level", "window"  # the viewer's slider keys
LEVELS = 255
PIXELS_PER_FULL_RANGE = 400  # a drag this long moves the level or the window across its whole range

_JS = """
export default function (component) {
  const { data, setStateValue } = component;
  const state = window.__xrayWindowDrag || (window.__xrayWindowDrag = { seq: 0 });
  state.level = data.level; state.width = data.window; state.send = setStateValue;
  if (state.started) { return; }
  state.started = true;
  const SPAN = __SPAN__;
  function viewer(target) {
    const gd = target && target.closest ? target.closest(".js-plotly-plot") : null;
    return gd && gd.layout && gd.layout.meta && gd.layout.meta.xray_viewer ? gd : null;
  }
  function clamp(v, lo, hi) { return Math.max(lo, Math.min(hi, v)); }
  function values(e) {
    const dx = e.clientX - state.x0, dy = e.clientY - state.y0;
    return { level: Math.round(clamp(state.level - dy * 255 / SPAN, 0, 255)),
             window: Math.round(clamp(state.width + dx * 256 / SPAN, 8, 256) / 4) * 4 };
  }
  let label = null, images = [];
  document.addEventListener("contextmenu", function (e) { if (viewer(e.target)) { e.preventDefault(); } }, true);
  document.addEventListener("mousedown", function (e) {
    const gd = e.button === 2 ? viewer(e.target) : null;
    if (!gd) { return; }
    e.preventDefault(); e.stopPropagation();
    state.x0 = e.clientX; state.y0 = e.clientY; state.dragging = true;
    images = [...gd.querySelectorAll("image")];
    label = document.createElement("div");
    label.setAttribute("data-testid", "window-level-drag");
    label.style.cssText = "position:fixed;z-index:1000;padding:2px 6px;border-radius:4px;" +
      "background:rgba(0,0,0,0.7);color:#fff;font:12px sans-serif;pointer-events:none";
    document.body.appendChild(label);
  }, true);
  document.addEventListener("mousemove", function (e) {
    if (!state.dragging) { return; }
    const v = values(e);
    const contrast = state.width / v.window, bright = 1 + (state.level - v.level) / 255 * contrast;
    images.forEach(function (img) { img.style.filter = "contrast(" + contrast + ") brightness(" + bright + ")"; });
    label.textContent = "Window " + v.window + "  Level " + v.level;
    label.style.left = (e.clientX + 14) + "px"; label.style.top = (e.clientY + 14) + "px";
  }, true);
  document.addEventListener("mouseup", function (e) {
    if (!state.dragging || e.button !== 2) { return; }
    state.dragging = false;
    if (label) { label.remove(); label = null; }
    const v = values(e);
    if (v.level !== state.level || v.window !== state.width) {
      state.seq += 1;
      state.send("wanted", { level: v.level, window: v.window, seq: state.seq });
    } else {
      images.forEach(function (img) { img.style.filter = ""; });
    }
  }, true);
}
""".replace("__SPAN__", str(PIXELS_PER_FULL_RANGE))

_drag = st.components.v2.component("window_drag", js=_JS)
KEY = "window_drag"
HANDLED = "window_drag_handled"


def apply_drag() -> None:
    """Before the page's run: put a window/level the reader dragged into the viewer's sliders."""
    state = st.session_state.get(KEY)
    wanted = state.get("wanted") if state is not None and hasattr(state, "get") else None
    if not isinstance(wanted, dict) or int(wanted.get("seq", 0)) <= st.session_state.get(HANDLED, 0):
        return
    st.session_state[HANDLED] = int(wanted["seq"])
    st.session_state[LEVEL] = int(min(max(int(wanted.get("level", 128)), 0), LEVELS))
    st.session_state[WINDOW] = int(min(max(int(wanted.get("window", 256)), 8), 256))


def window_drag(level: int, window: int) -> None:
    """Mount the drag handler (it draws nothing) with the window/level in force."""
    _drag(key=KEY, data={"level": int(level), "window": int(window)}, on_wanted_change=apply_drag)
