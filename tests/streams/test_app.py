"""The worker's Faust application keeps its data directory under the state folder, never the current one; a started
worker keeps what it loaded out of the garbage collector's full collections."""

from __future__ import annotations

import asyncio
import gc
import sys
from pathlib import Path

import pytest

from driftline.contract.settings import Settings
from driftline.streams.app import Worker


def test_faust_data_directory_is_under_the_state_folder_not_the_current_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DRIFTLINE_STATE_DIR", str(tmp_path / "user" / "state"))
    settings = Settings(metrics_port=0, http_port=0, model_hmac_key="k")
    worker = Worker(settings, "127.0.0.1:1", "redis://127.0.0.1:1/0")
    app = worker.create_app()
    assert Path(app.conf.datadir) == tmp_path / "user" / "state" / "driftline.worker-data"
    assert Path(app.conf.appdir).is_relative_to(tmp_path / "user" / "state")
    assert (tmp_path / "user" / "state").is_dir()  # Faust makes only the last level of its folders
    assert list(tmp_path.iterdir()) == [tmp_path / "user"]


def test_default_state_folder_is_the_users_not_the_current_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DRIFTLINE_STATE_DIR", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert Settings().state_dir == tmp_path / "xdg" / "driftline"
    monkeypatch.delenv("XDG_STATE_HOME")
    if sys.platform.startswith("linux"):
        assert Settings().state_dir == Path.home() / ".local" / "state" / "driftline"


@pytest.mark.integration
def test_a_started_worker_keeps_what_it_loaded_out_of_the_collector_s_full_collections(settings, stack):
    """Modules, the served model and the clients live as long as the worker: frozen once it started, a full
    collection no longer scans them (each scan held the event loop 115-150 ms: the HTTP API's p99)."""
    worker = Worker(settings, stack.broker_url, stack.redis_url)

    async def start_and_stop() -> tuple[int, bool]:
        await worker.start()
        try:
            model = worker.models.get(settings.model_name)
            collected = model is not None and any(o is model.model for o in gc.get_objects(generation=2))
            return gc.get_freeze_count(), collected
        finally:
            await worker.stop()

    assert gc.get_freeze_count() == 0
    try:
        frozen, model_still_scanned = asyncio.run(start_and_stop())
    finally:
        gc.unfreeze()
    assert frozen > 0 and not model_still_scanned
