"""The challenger track of the learner: a challenger learns in shadow what the champion learns, both are compared on
the same labels, and the challenger may be promoted.

``driftline models challenge NAME VERSION`` sets a challenger; the scorers serve it in shadow beside the champion
and store its output in each join record. For the labels the champion learned, :meth:`ChallengerTrack.follow`
lets a River challenger learn them too (exactly once: its learner is checkpointed with the champion's), pairs
both models' losses per lineage (:class:`~driftline.models.champion.PairedComparison`, stored for
``driftline models compare``), and with ``DRIFTLINE_CHALLENGER_AUTO_PROMOTE`` promotes a challenger that wins
significantly. Its snapshots (:meth:`ChallengerTrack.snapshot`) replace the challenger the scorers serve through a
compare-and-set on the registry's challenger pointer.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from driftline.contract.records import Label
from driftline.contract.settings import Settings
from driftline.contract.signing import IntegrityError
from driftline.models.champion import PairedComparison, PromotionPolicy, label_loss, save_comparison
from driftline.models.learner import OnlineLearner
from driftline.models.registry import ModelRegistry
from driftline.models.scoring import Scored
from driftline.models.version import UnknownModelError
from driftline.streams.learner_state import LearnerStore, ModelLearner
from driftline.streams.learning_stage import JoinRecord
from driftline.streams.metrics import MODEL_VERSION
from driftline.streams.shadow_challenger import ShadowChallenger

log = logging.getLogger(__name__)

#: One learned label: the label, its join record and the target the champion learned.
Learned = tuple[Label, JoinRecord, Any]


class ChallengerTrack:
    """Shadow learning, paired comparison and promotion of each model's challenger."""

    def __init__(self, settings: Settings, registry: ModelRegistry, store: LearnerStore):
        self.settings = settings
        self.registry = registry
        self.store = store
        self.promotion = PromotionPolicy(
            settings.challenger_min_labels, settings.challenger_alpha, settings.challenger_min_improvement
        )
        #: Lineage root of each (model, version) seen as a challenger (version metadata never changes).
        self._roots: dict[tuple[str, int], int] = {}

    async def follow(self, state: ModelLearner, learned: list[Learned]) -> None:
        """The challenger learns what the champion learned (River), then both are compared on those labels."""
        if state.challenger is None and not any(join.challenger for _, join, _ in learned):
            return  # no challenger (the scorers shadow-score a newly set one before its first labels come back)
        shadow = await self._sync(state)
        if shadow is None or not learned:
            return
        versions = {join.challenger[0] for _, join, _ in learned if join.challenger}
        lineage = {v for v in versions if await self._root(state.name, v) == shadow.root}
        shadow.learn([(label.event_id, join.x, y, join.challenger) for label, join, y in learned], lineage)
        # events scored before the challenger was promoted, cleared or replaced carry another lineage: skip them
        shadowed = [(join, y) for _, join, y in learned if join.challenger and join.challenger[0] in lineage]
        if shadowed:
            await self._compare(state, shadow, shadowed)

    def snapshot_due(self, state: ModelLearner) -> bool:
        """A River challenger learned enough since its last snapshot for a new one."""
        shadow = state.challenger
        return (
            shadow is not None
            and shadow.learner is not None
            and self.store.snapshot_due(shadow.learner, shadow.since_snapshot, shadow.last_snapshot)
        )

    async def snapshot(self, state: ModelLearner) -> None:
        """Register what the River challenger learned as the next version of its lineage and serve it in shadow."""
        shadow = state.challenger
        assert shadow is not None and shadow.learner is not None
        version = await self.store.register_snapshot(
            state.name,
            shadow.learner,
            shadow.version,
            "challenger snapshot in shadow",
            promote=False,
            challenger_root=shadow.root,
        )
        self._roots[state.name, version] = shadow.root
        if await asyncio.to_thread(self.registry.replace_challenger, state.name, shadow.version, version):
            shadow.snapshotted(version)
            MODEL_VERSION.labels(state.name, "challenger_learner").set(version)
        else:  # set or cleared meanwhile with `driftline models challenge`: the next batch follows the registry
            log.warning("challenger of %s changed meanwhile; snapshot v%s is not served", state.name, version)
            state.challenger = None

    async def _sync(self, state: ModelLearner) -> ShadowChallenger | None:
        """The challenger the registry names now; a new one (or another version) is loaded from the registry."""
        current = await asyncio.to_thread(self.registry.challenger_version, state.name)
        if current is None:
            state.challenger = None
            return None
        if state.challenger is not None and state.challenger.version == current:
            return state.challenger
        try:
            meta, model = await asyncio.to_thread(self.registry.load, state.name, current)
        except (IntegrityError, UnknownModelError) as exc:  # the scorers refuse it too, and alert
            log.warning("challenger %s v%s not loaded: %s", state.name, current, exc)
            state.challenger = None
            return None
        learner = OnlineLearner(model, meta.task) if hasattr(model, "learn_one") else None
        state.challenger = ShadowChallenger(await self._root(state.name, current), current, learner)
        return state.challenger

    async def _root(self, name: str, version: int) -> int:
        """The version that started the challenger lineage of ``version`` (itself unless a learner snapshot)."""
        if (name, version) not in self._roots:
            try:
                meta = await asyncio.to_thread(self.registry.get, name, version)
                self._roots[name, version] = int(meta.data_summary.get("challenger_root", version))
            except UnknownModelError:
                return version
        return self._roots[name, version]

    async def _compare(
        self, state: ModelLearner, shadow: ShadowChallenger, shadowed: list[tuple[JoinRecord, Any]]
    ) -> None:
        """Pair champion and challenger losses on the same joined labels; store the result; maybe promote."""
        if state.comparison is None or state.comparison[0] != shadow.root:
            state.comparison = (shadow.root, PairedComparison(alpha=self.settings.challenger_alpha))
        task, comparison = state.learner.task, state.comparison[1]
        for join, y in shadowed:
            _, prediction, probabilities, score = join.challenger  # type: ignore[misc]
            champion = Scored(join.prediction, join.probabilities, join.score, None)
            comparison.update(
                label_loss(task, y, champion), label_loss(task, y, Scored(prediction, probabilities, score, None))
            )
        result = comparison.result()
        await asyncio.to_thread(
            save_comparison,
            self.registry.client,
            self.settings.redis_prefix,
            state.name,
            result,
            champion_version=shadowed[-1][0].version,  # the version that served the latest paired label
            challenger_version=shadow.version,
        )
        decision = self.promotion.decide(result)
        if self.settings.challenger_auto_promote and decision.promote:
            if shadow.since_snapshot:  # what it learned since its last snapshot goes into the promoted version
                await self.snapshot(state)
            await asyncio.to_thread(self.registry.promote, state.name, shadow.version)
            await asyncio.to_thread(self.registry.set_challenger, state.name, None)
            state.comparison = state.challenger = None
            log.warning("promoted challenger %s v%s: %s", state.name, shadow.version, decision.reason)
