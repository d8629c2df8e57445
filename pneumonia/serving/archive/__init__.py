"""Score a site's archive: every file under a folder (or listed in a CSV) -> one row each in a
resumable parquet file, on a local process pool or a Ray cluster.

``discover`` finds the files, ``rows`` turns an :class:`~pneumonia.serving.results.ImageResult`
into a row without patient identifiers, ``store`` keeps committed parts and merges them into the
one file the user named, ``engines`` and ``ray_engine`` run the scoring, ``run`` ties them up.
"""
