"""Pneumonia chest x-ray review: Streamlit entry point registering the pages, with the frame they share."""

import streamlit as st

from pages import resources, widgets

# A local emoji, not a Material icon: those come from a font that the browser would fetch from a CDN.
st.set_page_config(page_title="Pneumonia x-ray review", page_icon="🫁", layout="wide")
resources.start_warm_up()  # the model and Grad-CAM load in a background thread while the page draws
widgets.frame(resources.model_version())
widgets.loading_notice(resources.model_ready)

pages = [
    st.Page("pages/review.py", title="Review x-rays", icon="🩻", default=True),
    st.Page("pages/eda.py", title="Dataset", icon="📊"),
    st.Page("pages/performance.py", title="Model performance", icon="📈"),
    st.Page("pages/model_card.py", title="Model card", icon="📄"),
]
st.navigation(pages).run()
