"""Pneumonia chest x-ray review: Streamlit entry point registering the pages, with the frame they share."""

import streamlit as st

# A local file, not a Material icon: that favicon would be fetched from a font CDN.
st.set_page_config(page_title="Pneumonia x-ray review", page_icon="assets/favicon.png", layout="wide")
starting = st.empty()
starting.info("Starting the review station...")  # a sign of life while the first run imports its libraries

from pages import warm_up  # noqa: E402 - after the sign of life; a light import

warm_up.start_warm_up()  # the model and Grad-CAM load in a background thread while the page draws

from pages import identity, resources, widgets  # noqa: E402 - the heavier imports, while the model loads

starting.empty()
identity.require_sign_in()  # with [auth] in the secrets: the sign-in screen, or who is signed in and a sign-out
# Streamlit forgets a widget's value on pages that do not draw it; the reader's name is entered once
# per session, so it is carried over to the other pages and back.
if "reader" in st.session_state:
    st.session_state["reader"] = st.session_state["reader"]
widgets.frame(resources.model_version())
widgets.loading_notice(warm_up.model_ready)

pages = [
    st.Page("pages/review.py", title="Review x-rays", icon=":material/radiology:", default=True),
    st.Page("pages/eda.py", title="Dataset", icon=":material/bar_chart:"),
    st.Page("pages/performance.py", title="Model performance", icon=":material/monitoring:"),
    st.Page("pages/model_card.py", title="Model card", icon=":material/description:"),
]
if identity.has_role(identity.Role.ADMIN):  # the page checks the role again itself
    pages.append(st.Page("pages/monitoring.py", title="Monitoring", icon=":material/query_stats:"))
st.navigation(pages).run()
