"""The offline half of the life cycle: framing card, data preparation, split, candidates, selection,
evaluation on a locked test set, error analysis, report and export of the model the stream bootstraps from.

Entry points (imported from their modules to keep ``import offline`` light):

- :func:`offline.framing.draft_card`, :func:`offline.framing.load_card` — the framing card;
- :func:`offline.train.train` (a file) and :func:`offline.train.train_frame` (a DataFrame) — train;
- :func:`offline.export.OnlineArtifact.load` — the exported River model with its schema;
- :func:`offline.register.register_dir` — store an output directory as a registry version.
"""
