"""The vectorised default partitioner agrees with aiokafka's (Kafka's Java murmur2) on any keys."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner, murmur2
from hypothesis import given
from hypothesis import strategies as st

from driftline.streams.partitioning import default_partitions, murmur2_many


@given(st.lists(st.binary(max_size=80), max_size=60))
def test_murmur2_many_is_kafkas_murmur2_of_each_key(keys: list[bytes]) -> None:
    assert murmur2_many(keys).tolist() == [murmur2(k) for k in keys]


@given(st.lists(st.binary(min_size=1, max_size=40), min_size=1, max_size=60), st.integers(1, 64))
def test_default_partitions_are_the_default_partitioners(keys: list[bytes], count: int) -> None:
    partitions = list(range(count))
    assert default_partitions(keys, partitions) == [DefaultPartitioner()(k, partitions, partitions) for k in keys]
