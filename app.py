"""Pneumonia chest x-ray review: Streamlit entry point registering the pages."""

import streamlit as st

st.set_page_config(page_title="Pneumonia x-ray review", page_icon=":material/pulmonology:", layout="wide")

pages = [
    st.Page("pages/review.py", title="Review x-rays", icon=":material/radiology:", default=True),
    st.Page("pages/eda.py", title="Dataset", icon=":material/bar_chart:"),
    st.Page("pages/performance.py", title="Model performance", icon=":material/monitoring:"),
    st.Page("pages/model_card.py", title="Model card", icon=":material/description:"),
]
st.navigation(pages).run()
