"""After the incident: the postmortem assembled from an incident's evidence bundles.

::

    gathering.py     read OUT/<incident>/<run_id>/ bundles (verified by sha256) and audit.jsonl
    timelines.py     events -> the ordered detection and response timeline (pure)
    postmortems.py   bundles, audit lines and parameters -> the report model (pure)
    writing.py       the report as postmortem.md and postmortem.html
    notebook.py      what notebooks/postmortem.ipynb's cells call
"""
