"""Settings from the environment, every variable prefixed `RIDEHAIL_`.

Defaults make `make run` work offline on one machine; production values come
from the environment, and the validator refuses the development secret there.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.dispatch import DispatchRules
from domain.fares import FareRules
from domain.pings import PingRules

DEV_JWT_SECRET = "dev-only-secret-change-me-0123456789abcdef"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RIDEHAIL_", env_file=None, extra="ignore")

    environment: str = Field("development", description="development | test | production")
    data_dir: Path = Path("./.ridehail")
    database_url: str = ""
    redis_url: str = "redis://127.0.0.1:6379/0"
    broker_url: str = ""  # defaults to redis_url
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    flower_port: int = 5555
    jwt_secret: str = DEV_JWT_SECRET
    access_token_ttl_s: int = 15 * 60
    refresh_token_ttl_s: int = 30 * 24 * 3600
    stream_token_ttl_s: int = 60

    stripe_api_key: str = ""
    stripe_api_base: str = "http://127.0.0.1:8420"
    stripe_webhook_secret: str = ""
    fcm_credentials: str = ""
    fcm_endpoint: str = "http://127.0.0.1:8421"

    max_body_bytes: int = 256 * 1024
    max_route_m: int = 200_000
    login_attempts_per_minute: int = 10
    outbox_redispatch_after_s: int = 60

    # live location
    ping_interval_on_ride_s: int = 3
    ping_interval_idle_s: int = 15
    ping_max_future_s: float = 120.0
    ping_max_age_s: float = 6 * 3600.0
    ping_max_speed_ms: float = 70.0
    ping_rate_limit: int = 60  # requests per driver per window
    ping_rate_window_s: int = 10
    ping_batch_max: int = 500
    driver_stale_s: int = 60
    eta_interval_s: float = 5.0
    sse_keepalive_s: float = 15.0

    # dispatch
    dispatch_wave_size: int = 3
    dispatch_offer_ttl_s: float = 15.0
    dispatch_first_radius_m: float = 2_000.0
    dispatch_radius_factor: float = 2.0
    dispatch_max_radius_m: float = 16_000.0
    dispatch_empty_wave_retry_s: float = 3.0

    # fraud basics
    fraud_rides_per_hour: int = 10
    fraud_cards_per_hour: int = 5
    fraud_failed_payments_per_hour: int = 3
    fraud_max_ride_amount: int = 50_000

    # fare rules, in minor units
    currency: str = "usd"
    fare_base: int = 250
    fare_per_km: int = 120
    fare_per_minute: int = 30
    fare_minimum: int = 700
    fare_booking_fee: int = 0
    cancellation_fee: int = 500
    cancellation_grace_s: int = 120
    no_show_fee: int = 500
    no_show_wait_s: int = 300
    commission_bp: int = 2000
    detour_factor: float = 1.3
    average_speed_kmh: float = 30.0

    @model_validator(mode="after")
    def _derive_and_check(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.data_dir / 'ridehail.db').as_posix()}"
        if not self.broker_url:
            self.broker_url = self.redis_url
        if self.environment == "production":
            if self.jwt_secret == DEV_JWT_SECRET or len(self.jwt_secret) < 32:
                raise ValueError(
                    "RIDEHAIL_JWT_SECRET must be set to a random secret of 32+ characters "
                    "in production"
                )
        return self

    @property
    def ping_rules(self) -> PingRules:
        return PingRules(
            max_future_s=self.ping_max_future_s,
            max_age_s=self.ping_max_age_s,
            max_speed_ms=self.ping_max_speed_ms,
        )

    @property
    def dispatch_rules(self) -> DispatchRules:
        return DispatchRules(
            wave_size=self.dispatch_wave_size,
            offer_ttl_s=self.dispatch_offer_ttl_s,
            first_radius_m=self.dispatch_first_radius_m,
            radius_factor=self.dispatch_radius_factor,
            max_radius_m=self.dispatch_max_radius_m,
            empty_wave_retry_s=self.dispatch_empty_wave_retry_s,
        )

    @property
    def fare_rules(self) -> FareRules:
        return FareRules(
            currency=self.currency,
            base=self.fare_base,
            per_km=self.fare_per_km,
            per_minute=self.fare_per_minute,
            minimum=self.fare_minimum,
            booking_fee=self.fare_booking_fee,
            cancellation_fee=self.cancellation_fee,
            cancellation_grace_s=self.cancellation_grace_s,
            no_show_fee=self.no_show_fee,
            no_show_wait_s=self.no_show_wait_s,
            commission_bp=self.commission_bp,
        )


@lru_cache
def get_settings() -> Settings:
    return Settings()
