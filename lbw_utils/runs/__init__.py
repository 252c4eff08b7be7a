"""Run plumbing: a study as independent runs (dataset, method, seed) -> one record, the records on disk, the
progress events, and the notebooks' parameter guard."""
