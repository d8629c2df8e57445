"""What the pages and reports show: the data set summary, the artifacts of a model folder read
back, Plotly charts that return ``(figure, answer)``, and CSV / PDF reports.

May import :mod:`pneumonia.serving` and :mod:`pneumonia.core`; never :mod:`pneumonia.training`.
"""
