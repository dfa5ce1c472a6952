"""Every Redis key driftline writes, in one place.

``P`` is the deployment's prefix (``Settings.redis_prefix``, the topic prefix with ``:``, ``driftline:`` by
default), ``N`` a model name (:data:`driftline.contract.records.MODEL_NAME_PATTERN`), ``V`` a version number::

    P models                   set      model names                                        (registry)
    P model:{N}:seq            counter  INCR gives version numbers 1, 2, 3, ...             (registry)
    P model:{N}:versions       hash     version -> metadata JSON                            (registry)
    P model:{N}:blob:V         string   the signed model blob of version V                  (registry)
    P model:{N}:reference:SHA  string   reference profile JSON, by its SHA-256 (versions     (registry)
                                        without their own profile sign their parent's)
    P model:{N}:current        string   the version scorers serve                           (registry)
    P model:{N}:history        list     promoted versions, the current one last             (registry)
    P model:{N}:pinned         set      versions retention keeps (promoted, not snapshots)  (registry)
    P model:{N}:challenger     string   the version scored in shadow                        (registry)
    P compare:{N}              string   champion/challenger paired comparison JSON          (learner)
    P learner:{N}              hash     signed learner checkpoint, offsets, learned count   (learner)
    P labelled:{N}             stream   rows learned, for `offline retrain` (contract.labelled) (learner)
    P labelled:{N}:rows        counter  rows the labelled stream holds (its cap is in rows)  (learner)
    P join:{N:SLICE}           hash     buckets and events of a slice of event time (TTL)   (scorer)
    P join:{N:SLICE:BUCKET}    hash     event id -> scored event waiting for its label (TTL) (scorer, learner)
    P join-slices:{N}          set      the slices of event time that hold join records     (scorer, learner)
    P join-layout:{N}:DIGEST   string   feature names of join records' values (JSON list)   (scorer)
    P monitor:{N}:ROLE         string   signed detector checkpoint of the scorer or learner (both)
    P threshold:{N}            string   decision threshold set by an alert action           (scorer)
    P retrain:{N}              list     retrain requests for `offline retrain`              (scorer)
    P alert-dedup:KEY          string   event time of the first claim of an alert key       (scorer, learner)

**Redis Cluster.** The braces are Redis Cluster hash tags: a key's slot is the hash of the text between its first ``{``
and ``}``, so every key of model ``N`` lives on one slot and every multi-key operation driftline sends (a
``MULTI``/``EXEC`` transaction, a Lua script, an ``MGET``) names keys of one model only: the registry's registration and
promotion transactions, the learner's checkpoint with its learned rows. The two keys without a tag are only ever used
alone (``SADD``/``SMEMBERS`` of ``models``, one alert claim per script call). Model names cannot hold braces
(``MODEL_NAME_PATTERN``), nor can the prefix (a Kafka topic name), so the tag is exactly the model name.
:func:`hash_tag` returns it; ``tests/contract/test_keys.py`` checks that every key function tags its key. A new
multi-key operation must use keys of one tag.

A slot lives on one master, so everything of one tag is bounded by one master's memory. The registry and the
checkpoints are small; join records are the bulk (bytes per waiting event × events/s × label TTL,
``docs/SCALING.md``). Keys of such a family may carry a finer tag that starts with the model name, e.g.
``{N:SLICE}`` for one slice of event time, so one model's records spread over the masters; each script or
transaction then stays within one such tag. The join records do: each bucket is its own tag
(``{N:SLICE:BUCKET}``), and every command on them names one key.

Redis itself enforces that layout: :func:`acl_rule` is the ACL of the user driftline connects as, every key under
the prefix and only :data:`COMMANDS` (used by the embedded stack and ``docker-compose.yml``; a new Redis command in
the code must be added there, the integration tests run with it).

Examples
--------
>>> model("driftline:", "fraud", "current"), learner("acme:", "fraud"), join_bucket("driftline:", "m", 7, 3)
('driftline:model:{fraud}:current', 'acme:learner:{fraud}', 'driftline:join:{m:7:3}')
>>> hash_tag(model("driftline:", "fraud", "current")) == hash_tag(learner("acme:", "fraud")) == "fraud"
True
"""

from __future__ import annotations


def tag(name: str) -> str:
    """The hash tag of model ``name``: its keys share one Redis Cluster slot.

    >>> tag("fraud")
    '{fraud}'
    """
    return f"{{{name}}}"


def hash_tag(key: str) -> str:
    """What Redis Cluster hashes of ``key``: the text between its first ``{`` and the next ``}`` when that is not
    empty, else the whole key (the rule of the Redis Cluster specification).

    >>> hash_tag("driftline:model:{fraud}:seq"), hash_tag("driftline:models"), hash_tag("a{}b{c}")
    ('fraud', 'driftline:models', 'a{}b{c}')
    """
    start = key.find("{")
    end = key.find("}", start + 1)
    return key[start + 1 : end] if start != -1 and end > start + 1 else key


def models(prefix: str) -> str:
    """The set of registered model names."""
    return f"{prefix}models"


def model(prefix: str, name: str, part: str) -> str:
    """One part of model ``name`` in the registry (``seq``, ``versions``, ``blob:V``, ``current``, ...)."""
    return f"{prefix}model:{tag(name)}:{part}"


def compare(prefix: str, name: str) -> str:
    """The champion/challenger comparison of model ``name``.

    >>> compare("driftline:", "fraud")
    'driftline:compare:{fraud}'
    """
    return f"{prefix}compare:{tag(name)}"


def learner(prefix: str, name: str) -> str:
    """The learner checkpoint hash of model ``name``."""
    return f"{prefix}learner:{tag(name)}"


def labelled(prefix: str, name: str) -> str:
    """The stream of rows learned for model ``name`` (retrain data)."""
    return f"{prefix}labelled:{tag(name)}"


def labelled_rows(prefix: str, name: str) -> str:
    """The count of rows the labelled stream of model ``name`` holds (its entries are blocks of rows).

    >>> labelled_rows("driftline:", "fraud")
    'driftline:labelled:{fraud}:rows'
    """
    return f"{prefix}labelled:{tag(name)}:rows"


def join_slice(prefix: str, name: str, slice_index: int) -> str:
    """How many buckets and events slice ``slice_index`` of event time holds for model ``name``."""
    return f"{prefix}join:{{{name}:{slice_index}}}"


def join_bucket(prefix: str, name: str, slice_index: int, bucket: int) -> str:
    """One bucket of the join records of model ``name`` whose events fall in slice ``slice_index`` (its own tag:
    a model's records spread over a cluster's masters)."""
    return f"{prefix}join:{{{name}:{slice_index}:{bucket}}}"


def join_slices(prefix: str, name: str) -> str:
    """The slices of event time that hold join records of model ``name``."""
    return f"{prefix}join-slices:{tag(name)}"


def join_layout(prefix: str, name: str, digest: int) -> str:
    """The feature names (in order) of the join records of model ``name`` written with layout ``digest``."""
    return f"{prefix}join-layout:{tag(name)}:{digest}"


def monitor(prefix: str, name: str, role: str) -> str:
    """The detector checkpoint of model ``name`` kept by ``role`` (``scoring`` or ``learning``)."""
    return f"{prefix}monitor:{tag(name)}:{role}"


def threshold(prefix: str, name: str) -> str:
    """The decision threshold of model ``name`` set by an alert action."""
    return f"{prefix}threshold:{tag(name)}"


def retrain(prefix: str, name: str) -> str:
    """The retrain requests of model ``name``."""
    return f"{prefix}retrain:{tag(name)}"


def alert_dedup(prefix: str) -> str:
    """The prefix of the alert dedup claims."""
    return f"{prefix}alert-dedup:"


# --- what each signed value's signature is for (driftline.contract.signing: a signature verifies nothing else) ---
def learner_purpose(name: str) -> str:
    """Purpose of the learner checkpoint of ``name`` (field ``checkpoint`` of :func:`learner`)."""
    return f"learner:{name}"


def challenger_purpose(name: str) -> str:
    """Purpose of the shadow challenger's checkpoint (field ``challenger_checkpoint`` of :func:`learner`)."""
    return f"challenger:{name}"


def monitor_purpose(name: str, role: str) -> str:
    """Purpose of a detector checkpoint (:func:`monitor`; the learning role's is field ``monitor`` of :func:`learner`).

    >>> monitor_purpose("fraud", "scoring")
    'monitor:fraud:scoring'
    """
    return f"monitor:{name}:{role}"


#: Every Redis command driftline sends (scripts included), and nothing else: no FLUSHALL, KEYS, CONFIG, DEBUG.
#: ``cluster|slots`` and ``command`` are how the Redis Cluster client learns which node serves which slot and where
#: each command's keys are (both read-only).
COMMANDS = (
    *("get", "set", "mget", "del", "incr", "incrby", "hget", "hset", "hgetall", "hexists", "hdel", "sadd", "smembers"),
    *("sismember", "rpush", "lpush", "lpop", "rpop", "lrange", "lrem", "ltrim", "xadd", "xrevrange", "multi", "exec"),
    *("xrange", "xtrim", "xlen"),
    *("discard", "watch", "unwatch", "eval", "evalsha", "script|load", "script|exists", "ping"),
    *("cluster|slots", "command"),
    *("hmget", "hsetnx", "hincrby", "expire", "srem"),
)


def acl_rule(prefix: str) -> str:
    """The ACL rules of the driftline Redis user: keys under ``prefix`` only (every key when empty), no pub/sub
    channels, only :data:`COMMANDS`.

    >>> acl_rule("driftline:")[:48]
    'resetkeys ~driftline:* resetchannels -@all +get '
    """
    return f"resetkeys ~{prefix}* resetchannels -@all " + " ".join(f"+{c}" for c in COMMANDS)
