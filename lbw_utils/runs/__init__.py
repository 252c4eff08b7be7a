"""Run plumbing: a study as independent runs (dataset, method, seed) -> one record (written in the format of
:mod:`lbw_utils.records`), the progress events, and the notebooks' parameter guard."""
