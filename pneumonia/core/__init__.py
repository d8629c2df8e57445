"""The bottom layer: what training and serving must agree on, with no TensorFlow and no Streamlit.

Input spec and labels, decoding uploads, the one preprocessing function, calibration, metrics and
operating points. Imports nothing else from :mod:`pneumonia`.
"""
