"""Reports on studies: HTML page, figures, gain tables, images, optuna-dashboard.

- :mod:`~spcl_search.reports.records`: reading the study records the search service writes
- :mod:`~spcl_search.reports.study`: opening a study (SQLite or PostgreSQL)
- :mod:`~spcl_search.reports.gain`, :mod:`~spcl_search.reports.best`: gain and best-settings tables
- :mod:`~spcl_search.reports.importance`: parameter importance per objective
- :mod:`~spcl_search.reports.figures`: plotly figures (Optuna's plots where one exists)
- :mod:`~spcl_search.reports.report`: the sections of a report; :mod:`~spcl_search.reports.html`
  writes it as one self-contained page, :mod:`~spcl_search.reports.images` as images
- :mod:`~spcl_search.reports.dashboard`: optuna-dashboard on the storage, report pushed into it
"""
