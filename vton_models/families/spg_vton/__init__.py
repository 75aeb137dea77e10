"""Seed 004: SPG-VTON (Hu et al., IEEE TMM 2022): semantic prediction, cycle-consistent warping and
try-on synthesis with global and local discriminators. Its networks are here; the family is listed
in ``vton_models/families/__init__.py`` once its recipes land (issue 18)."""
