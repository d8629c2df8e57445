"""Pneumonia chest x-ray review: Streamlit entry point registering the pages."""

import streamlit as st

st.set_page_config(page_title="Pneumonia x-ray review", page_icon="🫁", layout="wide")

pages = [
    st.Page("pages/review.py", title="Review x-rays", icon="🩻", default=True),
    st.Page("pages/eda.py", title="Dataset", icon="📊"),
    st.Page("pages/performance.py", title="Model performance", icon="📈"),
    st.Page("pages/model_card.py", title="Model card", icon="📄"),
]
st.navigation(pages).run()
