"""Settings never show a secret when printed (pytest's failure output and log lines print them)."""

from __future__ import annotations

from driftline.contract.settings import Settings


def test_repr_and_str_mask_every_password_but_keep_the_url_usable() -> None:
    settings = Settings(
        redis_url="redis://driftline:redis-s3cret@127.0.0.1:6379/0",
        webhook_url="https://hook:webhook-s3cret@example.com/alerts",
        redis_password="plain-s3cret",
        model_hmac_key="key-s3cret",
        http_token="token-s3cret",
    )
    for shown in (repr(settings), str(settings), f"{settings}", repr([settings])):
        assert "s3cret" not in shown
        assert "redis://driftline:***@127.0.0.1:6379/0" in shown
        assert "https://hook:***@example.com/alerts" in shown
    assert settings.redis_url == "redis://driftline:redis-s3cret@127.0.0.1:6379/0"
    assert settings.webhook_url == "https://hook:webhook-s3cret@example.com/alerts"
