"""The Redis keyspace: every key of a model carries the model's hash tag, so the multi-key operations (which all
name keys of one model) stay on one Redis Cluster slot."""

from __future__ import annotations

import inspect

from hypothesis import given
from hypothesis import strategies as st

from driftline.contract import keys
from driftline.contract.records import MODEL_NAME_PATTERN

#: Functions of a prefix alone: two keys never used with another key (no tag needed), and the ACL.
UNTAGGED = {"models", "alert_dedup", "acl_rule"}


def model_key_functions() -> dict[str, object]:
    """Every key function of :mod:`driftline.contract.keys` taking a prefix and a model name."""
    return {
        name: fn
        for name, fn in vars(keys).items()
        if inspect.isfunction(fn)
        and fn.__module__ == keys.__name__
        and list(inspect.signature(fn).parameters)[:2] == ["prefix", "name"]
    }


def test_every_key_function_of_a_model_tags_its_key_with_the_model_name():
    """The tag is the model name, or a finer one that starts with it (``fraud:7``, a slice of a big family)."""
    functions = model_key_functions()
    assert {"model", "learner", "labelled", "compare", "monitor", "threshold", "retrain"} <= set(functions)
    for name, fn in functions.items():
        extra = [7] * (len(inspect.signature(fn).parameters) - 2)
        tag = keys.hash_tag(fn("driftline:", "fraud", *extra))
        assert tag == "fraud" or tag.startswith("fraud:"), f"{name} has tag {tag!r}"
    untagged = {
        name
        for name, fn in vars(keys).items()
        if inspect.isfunction(fn) and list(inspect.signature(fn).parameters) == ["prefix"]
    }
    assert untagged == UNTAGGED, "a new key function without a model must be used alone, or take a tag"


@given(st.from_regex(MODEL_NAME_PATTERN, fullmatch=True), st.sampled_from(["driftline:", "acme.prod:", ""]))
def test_any_valid_model_name_is_exactly_the_tag_of_its_keys(name, prefix):
    tagged = {
        keys.model(prefix, name, "blob:3"),
        keys.model(prefix, name, "current"),
        keys.learner(prefix, name),
        keys.labelled(prefix, name),
        keys.join_slices(prefix, name),
        keys.join_layout(prefix, name, 7),
        keys.monitor(prefix, name, "scoring"),
    }
    assert {keys.hash_tag(k) for k in tagged} == {name}
    assert keys.hash_tag(keys.join_bucket(prefix, name, -3, 12)) == f"{name}:-3:12", "each bucket its own slot"


def test_the_cluster_client_may_learn_the_slots_but_not_change_the_cluster():
    rule = keys.acl_rule("driftline:")
    assert "+cluster|slots" in rule.split() and "+command" in rule.split()
    assert "+cluster" not in rule.split() and "+@all" not in rule
