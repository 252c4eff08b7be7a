"""Ensembles of independently trained baselines: their members (``member``) and their averaged prediction
(``ensemble``).

FAIR-Ensemble (Ko, D'souza, Nguyen, Balestriero, Hooker, arXiv 2303.00586; withdrawn from ICLR, so a hypothesis
here, not a fact) reports that the classes a single network learns worst gain most from averaging independently
trained networks, and keep gaining after the average class has stopped. Here:

* ``member`` (``index`` k >= 1): the baseline's loss, loop and network, trained again on the same split with
  training randomness (initial weights, batch order, augmentation draws) drawn from a seed derived from the
  run's (``lbw_utils.train.training_seed``): replicate k. The baseline is replicate 0.
* ``ensemble`` (``size`` K >= 1): the mean of the softmax outputs of the baseline and replicates 1 .. K - 1 of the
  same seed, kept as log-probabilities (a run of kind ``"ensemble"``, :class:`lbw_utils.methods.kinds.Ensemble`;
  it never trains). Its training compute is its members' (K networks), and it runs K networks at inference: the
  record's ``compute`` says both. The members must have run first (:func:`with_members` puts them in a list of
  methods); a missing one is refused by name.
"""

from __future__ import annotations

from lbw_utils.methods.spec import MethodSpec, positive_int
from lbw_utils.methods.static import CrossEntropy


def members_needed(method: dict) -> int:
    """How many networks a method dict needs of the baseline and its replicates (0 for one that needs none): an
    ensemble's ``size``, a student's ``teacher``."""
    if method.get("name") == "ensemble":
        return int(method.get("size", ENSEMBLE_SIZE))
    if method.get("name") == "distill":
        return int(method.get("teacher", ENSEMBLE_SIZE))
    return 0


def with_members(methods: list[dict]) -> list[dict]:
    """``methods`` with the ``member`` runs the ensembles and students among them need, each once, put before
    the first method that needs it (a study runs its methods in order, per seed)."""
    expanded, have = [], {m["index"] for m in methods if m.get("name") == "member" and "index" in m}
    for method in methods:
        for index in range(1, members_needed(method)):
            if index not in have:
                expanded.append({"name": "member", "index": index})
                have.add(index)
        expanded.append(method)
    return expanded


ENSEMBLE_SIZE = 5

SPECS = [
    MethodSpec("member", "train", {"index": positive_int(1)},
               build=lambda o, k, t, ls: CrossEntropy(ls), train_changes=lambda o, train: {"replicate": o["index"]},
               label_leading=("index",), is_row=False,
               summary="the baseline trained again on the same split with other training randomness: replicate k, "
                       "an ensemble's member",
               display="replicate {index} of the baseline"),
    MethodSpec("ensemble", "ensemble", {"size": positive_int(ENSEMBLE_SIZE)}, label_leading=("size",),
               summary="the mean softmax of the baseline and its first size - 1 replicates (same seed); size "
                       "networks trained and run at inference",
               display="ensemble of {size} baselines"),
]
