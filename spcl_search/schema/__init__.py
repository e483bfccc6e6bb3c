"""The study schema: what a study is and what its trials record, typed, shared by the search and the reports.

- :mod:`~spcl_search.schema.spec`: :class:`~spcl_search.schema.spec.StudySpec`, parsed once at each boundary
  (TOML file, command-line options, the JSON stored in the study), with the study defaults
- :mod:`~spcl_search.schema.records`: :class:`~spcl_search.schema.records.TrialRecord` (a trial's user
  attrs) and :class:`~spcl_search.schema.study_info.StudyInfo` (a study's), typed views over the stored keys
- :mod:`~spcl_search.schema.best`: the best SPCL setting per modality set and the paper's table of them
"""
