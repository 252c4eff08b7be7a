"""The studies that go beyond one table of methods: training length (notebook 07), tuning seeds (notebook 08),
what a method changes in the representation (notebook 09), and k-fold pooling (the names study). Each builds on
the research side (``lbw_utils``) and is imported by its notebook."""
