"""The runner: a profile's notebooks executed in order (``make reproduce``), fanned out over processes, GPUs or
a cluster, their progress shown, and a finished profile published. Nothing of the research lives here: the
runner executes notebooks, and the notebooks import the research side (``lbw_utils`` and
``lbw_utils.studies``)."""
