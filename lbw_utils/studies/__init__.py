"""The studies that go beyond one table of methods: the names study (notebook 05) and its k-fold pooling, training
length (notebook 07), tuning seeds (notebook 08), what a method changes in the representation (notebook 09). Each
builds on the research side (``lbw_utils``, ``lbw_utils.stats``) and computes; ``lbw_utils.reporting`` words and
writes what it computed (a study never imports reporting)."""
