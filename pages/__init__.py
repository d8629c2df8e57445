"""The review station's Streamlit views. app.py registers them with st.navigation (after its sign-in
check); no file here is a page on its own.

A folder named ``pages/`` beside app.py makes Streamlit, until some session's app.py has called
st.navigation, run a file in it directly when a freshly started server's first visitor asks for its
address (``/performance``), without app.py and so without sign-in. The first import of this package
in such a run switches that off for the process and runs the visit again through app.py.
"""

from streamlit.runtime.pages_manager import PagesManager

if PagesManager.uses_pages_directory:
    import streamlit as st

    PagesManager.uses_pages_directory = False
    st.rerun()
