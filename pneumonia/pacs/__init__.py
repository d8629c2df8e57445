"""The hospital's systems: a PACS over DICOMweb (query, retrieve, store), results as DICOM objects
(a Comprehensive SR / TID 1500 measurement report and a Secondary Capture of the heatmap, made with
highdicom), and the DICOM node that scores chest radiographs as they arrive (pynetdicom).

``config`` reads the connection (environment or a TOML file; secrets never logged), ``dicomweb``
talks to the PACS, ``results`` builds and reads back the SR and SC, ``scoring`` scores instances and
pushes their results, ``run`` is the archive-style scoring run behind ``python -m pneumonia.score URL``,
``listener`` is the C-STORE SCP behind ``python -m pneumonia.listen``.
"""
