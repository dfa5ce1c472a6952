"""The challenger as the learner sees it: its lineage, and a River challenger learning the champion's labels.

``driftline models challenge NAME VERSION`` sets the *root* of a lineage. A River challenger learns every label
the champion learns (the same joined features, in the same batch, checkpointed with the champion's learner, so
exactly once across restarts); its snapshots are registered as new versions (``data_summary["challenger_root"]``
names the root) and replace the challenger that the scorers serve in shadow. The paired comparison is kept per
lineage: shadow outputs of any version of the lineage count, so a snapshot does not restart it. A challenger
that cannot learn online (a scikit-learn model) is a lineage of one version.

Examples
--------
>>> from driftline.models.features import FeatureSchema
>>> from driftline.models.learner import OnlineLearner
>>> from driftline.models.specs import build_model
>>> shadow = ShadowChallenger(root=2, version=2,
...                           learner=OnlineLearner(build_model(FeatureSchema({"x": "numeric"}), "binary"), "binary"))
>>> shadow.learn([("e1", {"x": 1.0}, True, [2, True, {"True": 0.7, "False": 0.3}, 0.7])], {2})
1
>>> shadow.since_snapshot, shadow.learner.metrics()["accuracy"]
(1, 1.0)
>>> ShadowChallenger.from_state(shadow.state(), shadow.learner).version
2
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from driftline.models.learner import OnlineLearner

log = logging.getLogger(__name__)

#: One learned label as the challenger gets it: event id, features, target and the challenger's shadow output
#: (``[version, prediction, probabilities, score]`` or None).
Shadowed = tuple[str, dict[str, Any], Any, Sequence[Any] | None]


@dataclass
class ShadowChallenger:
    """One lineage of challenger versions and, for a River challenger, the learner that trains it."""

    root: int
    version: int
    learner: OnlineLearner | None = None
    since_snapshot: int = 0
    last_snapshot: float = field(default_factory=time.monotonic)

    @property
    def learns(self) -> bool:
        """True for a challenger that learns online (a River model)."""
        return self.learner is not None and self.learner.updates_model

    def learn(self, learned: Sequence[Shadowed], lineage: Collection[int]) -> int:
        """Learn the labels the champion just learned; how many were learned.

        The challenger's own shadow output (when its version is in ``lineage``) feeds its prequential metrics.
        A label that does not fit the challenger (another class set) is skipped.
        """
        if not self.learns:
            return 0
        assert self.learner is not None
        count = 0
        for event_id, x, y, shadow in learned:
            ours = shadow is not None and shadow[0] in lineage
            prediction, probabilities = (shadow[1], shadow[2]) if ours else (None, None)  # type: ignore[index]
            try:
                count += self.learner.learn(event_id, x, y, prediction, probabilities)
            except ValueError as exc:
                log.debug("challenger v%s skipped the label of %s: %s", self.version, event_id, exc)
        self.since_snapshot += count
        return count

    def snapshotted(self, version: int) -> None:
        """``version`` now holds what it learned."""
        self.version, self.since_snapshot, self.last_snapshot = version, 0, time.monotonic()

    def state(self) -> dict[str, int]:
        """What the checkpoint keeps beside the learner."""
        return {"root": self.root, "version": self.version, "since_snapshot": self.since_snapshot}

    @classmethod
    def from_state(cls, state: dict[str, int], learner: OnlineLearner | None) -> ShadowChallenger:
        return cls(state["root"], state["version"], learner, state["since_snapshot"])
