"""Reporting: what the statistics become for a reader: tables (markdown, CSV, LaTeX), generated sentences, figures
and the files they go to. Numbers are computed in ``lbw_utils.stats`` and ``lbw_utils.studies``; here they are only
shown and written: ``tables`` and ``sentences`` for every method table, ``outputs`` the one writer of a notebook's
generated texts, ``plots`` the figures, and one module per notebook beyond a method table (``names``, ``paper``,
``length``, ``tuning``, ``beyond``)."""
