"""Seed 003: CP-VTON with auxiliary human segmentation (``cpvton_aux``), being built (issue 16).

What exists so far: the ``cpvton`` representation (``vton_models/representation/cpvton.py``) and the
TOM network with its auxiliary decoder (``networks.py``). The family is registered in
``vton_models/families/__init__.py`` once its recipes land; until then nothing trains it.
"""
