"""lbw_utils: loss weighting against learnability imbalance.

The notebooks in ``notebooks/`` import this package; every piece of logic they
show (data, models, the training loop, metrics, plots, run records) lives here
once, with its own tests.
"""

__version__ = "0.1.0"
