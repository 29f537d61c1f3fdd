from __future__ import annotations

import pytest


def test_production_refuses_the_development_secret() -> None:
    from pydantic import ValidationError

    from infra.settings import DEV_JWT_SECRET, Settings

    with pytest.raises(ValidationError, match="JWT_SECRET"):
        Settings(environment="production", jwt_secret=DEV_JWT_SECRET)
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        Settings(environment="production", jwt_secret="short")
    with pytest.raises(ValidationError, match="FLOWER_PASSWORD"):
        Settings(environment="production", jwt_secret="x" * 40)
    ok = Settings(
        environment="production",
        jwt_secret="x" * 40,
        flower_password="a-real-password",
        database_url="",
        data_dir="/srv",
    )
    assert ok.database_url == "sqlite:////srv/ridehail.db"


def test_rules_are_read_as_the_domains_own_values(monkeypatch: pytest.MonkeyPatch) -> None:
    from infra.settings import Settings

    monkeypatch.setenv("RIDEHAIL_FARE_PER_KM", "99")
    monkeypatch.setenv("RIDEHAIL_FARE_CURRENCY", "eur")
    monkeypatch.setenv("RIDEHAIL_DISPATCH_WAVE_SIZE", "5")
    monkeypatch.setenv("RIDEHAIL_FRAUD_CARDS_PER_HOUR", "2")
    monkeypatch.setenv("RIDEHAIL_FIXES_MAX_SPEED_MS", "50")
    monkeypatch.setenv("RIDEHAIL_PING_INTERVAL_IDLE_S", "7")  # a plain setting beside them
    s = Settings()
    assert (s.fare.per_km, s.fare.currency, s.fare.base) == (99, "eur", 250)
    assert (s.dispatch.wave_size, s.fraud.cards_per_hour) == (5, 2)
    assert (s.fixes.max_speed_ms, s.ping_interval_idle_s) == (50.0, 7)


def test_a_value_a_rule_refuses_stops_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from infra.settings import Settings

    monkeypatch.setenv("RIDEHAIL_FARE_BASE", "-5")
    with pytest.raises(ValidationError, match="base must not be negative"):
        Settings()
