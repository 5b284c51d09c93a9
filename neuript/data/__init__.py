"""The data layer: recordings in, windows out. Knows nothing of models.

Modules (imported on demand, so ``import neuript.data`` stays cheap):

* :mod:`neuript.data.io` — ``read_raw``: any MNE-supported file, validated, errors naming the file
* :mod:`neuript.data.preprocess` — ``PreprocessConfig``, ``preprocess_raw``, windows, rejection, ``alaw``
* :mod:`neuript.data.store` — ``WindowStore`` and ``prepare_store`` (parallel, atomic, resumable), ``store_info``
* :mod:`neuript.data.recipes` — dataset recipes by name (``eegmat``, ``eegmmidb``, ``sleep_edfx``)
* :mod:`neuript.data.loader` — ``WindowDataset``, ``make_loader`` (montage-grouped, deterministic, DDP-aware)
* :mod:`neuript.data.sample` — ``sample_path``: the bundled offline sample

See docs/data.md.
"""
