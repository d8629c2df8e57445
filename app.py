"""Pneumonia chest x-ray review: Streamlit entry point registering the pages, with the frame they share."""

import streamlit as st

from pages import resources, widgets

st.set_page_config(page_title="Pneumonia x-ray review", page_icon=":material/pulmonology:", layout="wide")
widgets.frame(resources.model_version())

pages = [
    st.Page("pages/review.py", title="Review x-rays", icon=":material/radiology:", default=True),
    st.Page("pages/eda.py", title="Dataset", icon=":material/bar_chart:"),
    st.Page("pages/performance.py", title="Model performance", icon=":material/monitoring:"),
    st.Page("pages/model_card.py", title="Model card", icon=":material/description:"),
]
st.navigation(pages).run()
