"""Reporting: what the statistics become for a reader: tables (markdown, CSV, LaTeX), generated sentences and
figures. Numbers are computed in ``lbw_utils.stats``; here they are only shown."""
