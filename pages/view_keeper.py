"""The viewer's zoom and pan kept across re-renders and images, and the film kept in view.

Streamlit gives a Plotly chart a new element id whenever its figure changes (the id hashes the
figure), so every opacity, window/level or method change mounts a new chart and Plotly's
``uirevision`` never sees the old one: the reader's zoom was lost on each change. This small
script, added to the page once, remembers the last zoom and pan of the x-ray viewer (as fractions
of the film, so it also holds across J/K to the next film), puts it back on each new viewer, and
when a different film opens scrolls the viewer into view (not the read form below it).
A double-click in the viewer resets the view as before.
"""

from __future__ import annotations

import streamlit as st

VIEWER_META = "xray_viewer"  # layout.meta key the viewer figure carries: the open image's hash

_SCRIPT = """
<script>
(function () {
  const doc = window.document;
  if (window.__xrayViewKeeper) { return; }
  window.__xrayViewKeeper = true;
  const state = { view: null, image: null };
  function meta(gd) { return gd.layout && gd.layout.meta && gd.layout.meta.__META__ ? gd.layout.meta : null; }
  function remember(gd) {
    const m = meta(gd), fl = gd._fullLayout;
    if (!m || !fl || !fl.xaxis || !fl.yaxis) { return; }
    const x = fl.xaxis.range, y = fl.yaxis.range;
    const f = { x0: (x[0] + 0.5) / m.width, x1: (x[1] + 0.5) / m.width,
                y0: (Math.min(y[0], y[1]) + 0.5) / m.height, y1: (Math.max(y[0], y[1]) + 0.5) / m.height };
    const whole = f.x0 <= 0.001 && f.x1 >= 0.999 && f.y0 <= 0.001 && f.y1 >= 0.999;
    state.view = whole ? null : f;
  }
  function restore(gd) {
    const m = meta(gd), f = state.view;
    if (!m || !f || !window.Plotly) { return; }
    window.Plotly.relayout(gd, {
      "xaxis.range": [f.x0 * m.width - 0.5, f.x1 * m.width - 0.5],
      "yaxis.range": [f.y1 * m.height - 0.5, f.y0 * m.height - 0.5],
    });
  }
  function keepInView(gd) {
    const chart = gd.closest('[data-testid="stPlotlyChart"]') || gd;
    const box = chart.getBoundingClientRect();
    const high = window.innerHeight;
    if (box.top < 0 || box.bottom > high) {
      chart.scrollIntoView({ block: box.height <= high ? "end" : "start" });
    }
  }
  function attach(gd) {
    gd.__xrayKept = true;
    const m = meta(gd);
    restore(gd);
    gd.on("plotly_relayout", function (change) {
      if (change && (change["xaxis.autorange"] || change["yaxis.autorange"])) {
        state.view = null;
        // back to the whole film with explicit ranges, as first drawn: under autorange the second panel,
        // which follows the first's axes without a scale anchor of its own, stretched to the full width
        if (window.Plotly && !gd.__xrayResetting) {
          gd.__xrayResetting = true;
          window.Plotly.relayout(gd, { "xaxis.range": [-0.5, m.width - 0.5], "yaxis.range": [m.height - 0.5, -0.5] })
            .then(function () { gd.__xrayResetting = false; }, function () { gd.__xrayResetting = false; });
        }
        return;
      }
      remember(gd);
    });
    if (m.__META__ !== state.image) {
      state.image = m.__META__;
      keepInView(gd);
    }
  }
  // below 1000 px the sidebar would leave the films about 230 px wide: fold it once per browser session
  // (the reader opens it again with its arrow; the operating point and reader name live there)
  try {
    if (window.innerWidth < 1000 && !window.sessionStorage.getItem("xraySidebarFolded")) {
      window.sessionStorage.setItem("xraySidebarFolded", "1");
      const fold = setInterval(function () {
        const button = doc.querySelector('[data-testid="stSidebarCollapseButton"] button');
        if (button) { button.click(); clearInterval(fold); }
      }, 100);
      setTimeout(function () { clearInterval(fold); }, 20000);
    }
  } catch (error) { /* no session storage: leave the sidebar as it is */ }
  setInterval(function () {
    doc.querySelectorAll(".js-plotly-plot").forEach(function (gd) {
      if (!gd.__xrayKept && gd._fullLayout && meta(gd)) { attach(gd); }
    });
  }, 50);
})();
</script>
""".replace("__META__", VIEWER_META)


def keep_view() -> None:
    """Add the script once per page run (it guards itself, so a second copy does nothing)."""
    st.html(_SCRIPT, unsafe_allow_javascript=True, width="content")
