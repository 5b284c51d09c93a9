"""Bridges from neuript to other EEG toolkits; each one imports its toolkit lazily (an optional extra).

- :mod:`neuript.integrations.moabb`: MOABB datasets over local recordings (``pip install 'neuript[moabb]'``), to
  evaluate :class:`neuript.sklearn.NeurIPTClassifier` with MOABB's paradigms and evaluations offline.
"""
