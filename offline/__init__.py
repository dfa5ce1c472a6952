"""The offline half of the life cycle: framing card, data preparation, split, candidates, selection,
evaluation on a locked test set, error analysis, report and export of the model the stream bootstraps from.

Entry points (imported from their modules to keep ``import offline`` light):

- :func:`driftline.offline.framing.draft_card`, :func:`driftline.offline.framing.load_card` — the framing card;
- :func:`driftline.offline.train.train` (a file) and :func:`driftline.offline.train.train_frame` (a DataFrame) — train;
- :func:`driftline.offline.export.OnlineArtifact.load` — the exported River model with its schema;
- :func:`driftline.offline.register.register_dir` — store an output directory as a registry version.
"""
