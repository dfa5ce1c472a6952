"""One frozen, typed settings object for every driftline process.

Every field can be set from the environment with the ``DRIFTLINE_`` prefix
(``DRIFTLINE_BROKER_URL``, ``DRIFTLINE_REDIS_URL``, ...), or from a file of that
name in :data:`SECRETS_DIR` when the directory exists (a mounted Kubernetes
Secret: no secret in the process environment; the environment wins). Nothing
else in the code reads ``os.environ``. ``repr`` and ``str`` never show a secret:
``SecretStr`` fields print ``**********`` and URLs their password as ``***``.

Examples
--------
>>> s = Settings(topic_prefix="acme.")
>>> s.topic("events")
'acme.events'
>>> s.uses_embedded_stack
True
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from driftline.contract.records import AlertKind, ts_window
from driftline.contract.signing import Keyring
from driftline.contract.urls import masked

MissingFeaturePolicy = Literal["impute", "reject"]
UnknownFeaturePolicy = Literal["ignore", "reject"]
AlertAction = Literal["none", "rollback", "adjust_threshold", "retrain"]

#: Directory of one file per secret setting (``DRIFTLINE_MODEL_HMAC_KEY``, ...), read when it exists.
SECRETS_DIR = Path("/run/secrets/driftline")

#: One bootstrap server: a host name, IPv4 address or bracketed IPv6 address, and a port; no scheme, no path.
BOOTSTRAP_SERVER = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):[0-9]{1,5}$")
#: Schemes redis-py connects with.
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
#: Fields whose URL may carry a password (``repr`` masks it; the value itself is untouched).
URL_FIELDS = ("redis_url", "webhook_url")
NO_KEY = (
    "DRIFTLINE_MODEL_HMAC_KEY is not set: start `driftline up` and export what it prints, or set the key "
    "(or a file DRIFTLINE_MODEL_HMAC_KEY in /run/secrets/driftline)"
)


def default_state_dir() -> Path:
    """The user's state folder for driftline (XDG ``$XDG_STATE_HOME/driftline`` on Linux, via platformdirs).

    >>> default_state_dir().name
    'driftline'
    """
    from platformdirs import user_state_path

    return user_state_path("driftline", appauthor=False)


class Settings(BaseSettings):
    """Settings of a driftline process (broker, redis, topics, policies, metrics)."""

    model_config = SettingsConfigDict(
        env_prefix="DRIFTLINE_", frozen=True, extra="ignore", secrets_dir=SECRETS_DIR if SECRETS_DIR.is_dir() else None
    )

    # --- connections -------------------------------------------------------------------------
    broker_url: str | None = Field(
        None, description="Kafka bootstrap servers, e.g. kafka:9092. Unset: the embedded Tansu broker."
    )
    redis_url: str | None = Field(
        None, description="Redis URL, e.g. redis://user:pass@redis:6379/0. Unset: embedded redis-server."
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How every Kafka client (aiokafka, Faust and librdkafka) connects."
    )
    kafka_client: Literal["confluent", "aiokafka"] = Field(
        "aiokafka",
        description="Kafka client of the scorer's source (events) and bulk output (predictions, monitor feed, "
        "reviews): confluent (librdkafka, confluent-kafka) or aiokafka. Every other client is aiokafka's.",
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism (SASL_* protocols; PLAIN when unset)."
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user.")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password.")
    kafka_ssl_cafile: str | None = Field(None, description="CA bundle that signed the brokers' certificates.")
    kafka_ssl_certfile: str | None = Field(None, description="Client certificate (mutual TLS).")
    kafka_ssl_keyfile: str | None = Field(None, description="Client certificate's key (mutual TLS).")
    redis_username: str | None = Field(None, description="Redis ACL user (overrides the URL's user).")
    redis_password: SecretStr | None = Field(None, description="Redis ACL password.")
    redis_ssl: bool = Field(False, description="Connect to Redis over TLS (rediss://).")
    redis_ssl_cafile: str | None = Field(None, description="CA bundle of the Redis server's certificate.")
    redis_cluster: bool = Field(
        False,
        description="DRIFTLINE_REDIS_URL is a node of a Redis Cluster: connect with the cluster client (it finds "
        "the other nodes; each model's keys share one hash slot).",
    )

    # --- topics ------------------------------------------------------------------------------
    topic_prefix: str = Field(
        "driftline.", description="Prefix of every topic; Redis keys use it with ':' (driftline:)."
    )
    partitions: int = Field(4, ge=1, description="Partitions of every driftline topic.")
    replication_factor: int = Field(1, ge=1, description="Replication factor of the topics driftline creates.")

    # --- model -------------------------------------------------------------------------------
    model_name: str = Field("default", description="Model an event without a 'model' field is scored by.")
    model_hmac_key: SecretStr | None = Field(
        None,
        description="Key signing every model version, checkpoint and alert. Required (`driftline up` prints one).",
    )
    model_hmac_old_keys: SecretStr | None = Field(
        None,
        description="Old signing keys, comma-separated, still accepted for verification during a key rotation.",
    )
    reload_check_seconds: float = Field(1.0, gt=0, description="How often scorers look for a new version.")

    # --- input validation --------------------------------------------------------------------
    max_event_bytes: int = Field(65_536, gt=0, description="Larger payloads are dead-lettered.")
    missing_feature_policy: MissingFeaturePolicy = Field(
        "impute", description="impute: score with the feature absent (models impute); reject: dead-letter."
    )
    unknown_feature_policy: UnknownFeaturePolicy = Field(
        "ignore", description="ignore: drop features not in the schema; reject: dead-letter."
    )
    max_ts_future_seconds: float = Field(
        86_400.0, ge=0, description="Events and labels whose ts is further ahead of now are dead-lettered."
    )
    max_ts_past_seconds: float | None = Field(
        None, ge=0, description="Events and labels whose ts is further behind now are dead-lettered (unset: any)."
    )

    # --- scoring -----------------------------------------------------------------------------
    # 2,000: what a batch costs whatever its size (feed message, join write, produce requests, the monitor's merge)
    # shared by 4x more events than at 500 on a backlog; small batches at low rates all the same (BENCHMARKS.md)
    batch_size: int = Field(2000, ge=1, description="Max events scored in one batch.")
    batch_timeout_ms: int = Field(50, ge=1, description="Max wait to fill a batch.")
    # the embedded broker (Tansu) answers a fetch that found nothing after half the time it may wait (then looks
    # again): a scorer's fetch sent just before the next events parks for ~25 ms at 50 (BENCHMARKS.md)
    score_fetch_wait_ms: int = Field(
        10, ge=1, description="Max wait of the scorer's fetches on the broker (at most the batch timeout)."
    )
    learn_batch_size: int = Field(500, ge=1, description="Max labels learned in one batch.")
    review_confidence_threshold: float | None = Field(
        None, ge=0, le=1, description="Predictions below this confidence also go to the review topic."
    )
    explain_top_k: int = Field(
        0,
        ge=0,
        le=1000,
        description="Add the top K feature contributions to each prediction (River linear models; 0: off).",
    )

    # --- learning ----------------------------------------------------------------------------
    label_ttl_seconds: int = Field(7 * 24 * 3600, gt=0, description="How long events wait for a label.")
    join_grace_seconds: float = Field(
        30.0,
        ge=0,
        description="A label whose event is not found waits while the scorers progress (UnknownEvent once they "
        "passed the end of events as it was when the label came); after this many seconds in which they committed "
        "nothing, the batch is retried from the checkpoint (never dead-lettered for it).",
    )
    join_buffer_max: int = Field(
        200_000,
        ge=1,
        description="Join records held while Redis is unreachable; when full, scoring pauses until they are written.",
    )
    exactly_once_window_seconds: float = Field(
        3600.0,
        ge=0,
        description="A learned label's id is remembered this long in label event time: a duplicate within it is "
        "dead-lettered (DuplicateLabel), not learned again.",
    )
    max_learned_ids: int = Field(
        100_000,
        ge=1,
        description="Memory bound of that window: past this many ids the oldest are forgotten early "
        "(driftline_learned_ids_forgotten_early_total); size it above labels/s x the window.",
    )
    checkpoint_interval_ms: int = Field(
        500, ge=0, description="Under load the learner checkpoints at most this often (always when caught up)."
    )
    snapshot_every_labels: int = Field(1000, ge=1, description="Publish a model version every N labels.")
    snapshot_every_seconds: float = Field(30.0, gt=0, description="... or every T seconds.")
    snapshot_min_interval_ms: int = Field(
        1000,
        ge=0,
        description="... but at most one version this often: at high label rates the registry gets one a "
        "reload_check_seconds, not one per N labels (concept drift still freezes its model every N labels).",
    )
    keep_versions: int = Field(
        10,
        ge=2,
        description="Versions of each model the registry keeps besides the pinned (promoted by hand, offline or by "
        "a challenger), current, challenger and learners' ones: the learner prunes older snapshots after each one.",
    )

    # --- champion / challenger --------------------------------------------------------------
    challenger_auto_promote: bool = Field(
        False, description="Promote the challenger when it beats the champion significantly (else manual)."
    )
    challenger_min_labels: int = Field(1000, ge=1, description="Paired labels needed before auto-promotion.")
    challenger_alpha: float = Field(0.05, gt=0, lt=1, description="Significance level of the paired test.")
    challenger_min_improvement: float = Field(0.0, ge=0, description="Relative loss improvement required.")

    # --- metrics -----------------------------------------------------------------------------
    metrics_host: str = Field("127.0.0.1", description="Address /metrics binds to.")
    metrics_port: int = Field(9464, ge=0, le=65535, description="Port of /metrics; 0 disables it.")

    # --- real-time HTTP (Open Inference Protocol V2) -----------------------------------------
    http_host: str = Field("127.0.0.1", description="Address the worker's V2 inference API binds to.")
    http_port: int = Field(
        8080, ge=0, le=65535, description="Port of the V2 inference API (/v2/models/NAME/infer); 0 disables it."
    )
    http_token: SecretStr | None = Field(
        None, description="Bearer token the V2 API requires (Authorization: Bearer ...); unset: no auth."
    )

    # --- monitoring and alerts --------------------------------------------------------------
    false_alarms_per_100k: float = Field(
        1.0, gt=0, description="Fleet-wide false-alarm budget over every detector, per 100,000 events."
    )
    alert_cooldown_seconds: float = Field(
        60.0, ge=0, description="An alert is not repeated within this much event time (the events' timestamps)."
    )
    alert_actions: dict[AlertKind, AlertAction] = Field(
        default_factory=dict,
        description='Action per alert kind, JSON, e.g. {"concept_drift": "retrain", "prediction_drift": '
        '"adjust_threshold"}; unset kinds keep the defaults (retrain on concept drift, rollback on integrity).',
    )
    webhook_url: str | None = Field(None, description="POST every alert as JSON here (with retries).")
    webhook_retries: int = Field(3, ge=0, description="Retries of a failed webhook delivery (exponential backoff).")

    # --- consumer-group tuning (defaults suit the embedded broker and tests) -----------------
    session_timeout_ms: int = Field(10_000, ge=1000, description="A silent worker leaves the group after this.")
    heartbeat_interval_ms: int = Field(1_000, ge=100, description="Consumer heartbeat interval.")
    rebalance_timeout_ms: int = Field(10_000, ge=1000, description="Time members get to rejoin on a rebalance.")

    # --- local state -------------------------------------------------------------------------
    state_dir: Path = Field(
        default_factory=lambda: default_state_dir(),
        description="Folder of a process's local state (the worker's Faust data directory); default: the "
        "user's state folder (~/.local/state/driftline on Linux), never the current folder.",
    )

    @field_validator("broker_url")
    @classmethod
    def _bootstrap_servers(cls, value: str | None) -> str | None:
        """``host:port[,host:port...]``, as Kafka clients take it (a scheme would be read as the host name).

        >>> Settings(broker_url="kafka-1:9092,kafka-2:9092", model_hmac_key="k").broker_url
        'kafka-1:9092,kafka-2:9092'
        >>> Settings(broker_url="http://localhost:9092/", model_hmac_key="k")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        pydantic_core._pydantic_core.ValidationError: 1 validation error for Settings
        broker_url
          Value error, 'http://localhost:9092/' is not host:port[,host:port...] (no scheme, no path): ...
        """
        if value is None:
            return None
        if not all(BOOTSTRAP_SERVER.match(server.strip()) for server in value.split(",")):
            raise ValueError(f"{value!r} is not host:port[,host:port...] (no scheme, no path): e.g. localhost:9092")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(REDIS_SCHEMES):
            raise ValueError(f"{value!r} is not a Redis URL: e.g. redis://localhost:6379/0 (or rediss://, unix://)")
        return value

    def __repr_args__(self) -> Any:
        """What ``repr``/``str`` show: every field, with the passwords in :data:`URL_FIELDS` masked.

        >>> Settings(redis_url="redis://u:s3cret@r:6379/0", model_hmac_key="k")  # doctest: +ELLIPSIS
        Settings(broker_url=None, redis_url='redis://u:***@r:6379/0', ...)
        """
        for name, value in super().__repr_args__():
            yield name, masked(value) if name in URL_FIELDS and isinstance(value, str) else value

    @property
    def uses_embedded_stack(self) -> bool:
        """True when neither a broker nor a Redis URL was configured."""
        return self.broker_url is None and self.redis_url is None

    @property
    def redis_prefix(self) -> str:
        """Prefix of every Redis key of this deployment, derived from the topic prefix (``driftline:``)."""
        return f"{self.topic_prefix.rstrip('.')}:"

    def topic(self, name: str) -> str:
        """Full topic name for a contract topic name (``events``, ``labels``, ...)."""
        return f"{self.topic_prefix}{name}"

    def ts_bounds(self, now_ms: int) -> tuple[int, int]:
        """The record timestamps accepted at ``now_ms`` (epoch-ms, inclusive; see ``max_ts_*_seconds``).

        >>> Settings(max_ts_future_seconds=60, max_ts_past_seconds=3600).ts_bounds(10_000_000)
        (6400000, 10060000)
        >>> Settings().ts_bounds(10_000_000)
        (0, 96400000)
        """
        past = self.max_ts_past_seconds
        return ts_window(now_ms, int(self.max_ts_future_seconds * 1000), None if past is None else int(past * 1000))

    def keyring(self) -> Keyring:
        """The signing keyring: the current key signs, old keys verify. ``ValueError`` (one line) without a key.

        >>> Settings(model_hmac_key="new", model_hmac_old_keys="old1, old2").keyring()
        Keyring(current=..., old=[..., ...])
        """
        if self.model_hmac_key is None or not self.model_hmac_key.get_secret_value():
            raise ValueError(NO_KEY)
        old = (self.model_hmac_old_keys.get_secret_value() if self.model_hmac_old_keys else "").split(",")
        return Keyring(self.model_hmac_key.get_secret_value().encode(), [k.strip().encode() for k in old if k.strip()])
