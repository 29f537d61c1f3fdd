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
from domain.ratings import RatingRules
from domain.trip import LiveRules
from domain.usecases.context import FraudRules
from domain.usecases.settlement import PAYOUT_RETRY_S
from domain.usecases.sweeps import DEADLINES

DEV_JWT_SECRET = "dev-only-secret-change-me-0123456789abcdef"
DEV_FLOWER_PASSWORD = "dev-only-flower"


_REPO = Path(__file__).resolve().parents[1]  # the checkout (the app's files, in development)
_LIVE = LiveRules()  # the live view's defaults, written once in the domain
_DEADLINES = DEADLINES


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RIDEHAIL_",
        env_file=None,
        extra="ignore",
        # RIDEHAIL_FARE_PER_KM -> fare.per_km: split once after the group's name
        env_nested_delimiter="_",
        env_nested_max_split=1,
    )

    environment: str = Field("development", description="development | test | production")
    log_format: str = Field("json", description="json (one object per line) | text")
    data_dir: Path = Path("./.ridehail")
    database_url: str = ""
    redis_url: str = "redis://127.0.0.1:6379/0"
    # live state on a Redis Cluster: redis_url names one of its nodes (the client finds
    # the rest); the broker must then be a Redis of its own (kombu speaks no cluster)
    redis_cluster: bool = False
    # `ridehail run` only: live state on a local cluster of this many primaries, each
    # with a replica (0: one redis-server, live state and broker together)
    dev_redis_cluster: int = Field(0, ge=0, le=16)
    # on a cluster, a trip's fix is answered 202 once this many replicas of the driver's
    # shard have it (Redis's WAIT), or once `redis_wait_ms` have passed: what a failover
    # can lose is then what came in while the replica was away (0: no wait)
    redis_wait_replicas: int = Field(1, ge=0, le=8)
    redis_wait_ms: int = Field(100, ge=1, le=10_000)
    # defaults to redis_url; `sentinel://host:26379;sentinel://host2:26379/0` reaches the
    # broker's Redis through Sentinel, the primary being the one of `broker_sentinel_master`
    broker_url: str = ""
    broker_sentinel_master: str = "ridehail-broker"
    # `ridehail run` only: the broker on a Redis of its own with a replica and three
    # sentinels, RIDEHAIL_BROKER_URL pointing at them (a failover can be tried locally)
    dev_broker_sentinel: bool = False
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # `ridehail run`: this many API processes behind HAProxy on api_host:api_port (1: the
    # API itself listens there); the proxy's address is the one the processes trust for
    # X-Forwarded-For
    api_processes: int = Field(1, ge=1, le=64)
    flower_port: int = 5555
    # Prometheus scrapes `ridehail metrics` here: an internal address, never the public API
    # (the figures are traffic by route, payments by status, queue depths)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9464
    flower_user: str = "admin"
    flower_password: str = DEV_FLOWER_PASSWORD  # basic auth of Flower's pages
    jwt_secret: str = DEV_JWT_SECRET
    access_token_ttl_s: int = 15 * 60
    refresh_token_ttl_s: int = 30 * 24 * 3600
    stream_token_ttl_s: int = 60

    stripe_api_key: str = ""
    stripe_api_base: str = "http://127.0.0.1:8420"
    stripe_webhook_secret: str = ""
    stripe_timeout_s: float = 20.0  # one Stripe call, before it is retried with its key
    # Stripe.js in the apps saves cards with the account's publishable key (pk_test_...);
    # offline, the stand-in takes any test one and serves Stripe.js itself
    stripe_publishable_key: str = ""
    fcm_credentials: str = ""
    fcm_endpoint: str = "http://127.0.0.1:8421"
    # one FCM send: past it the push's outcome is unknown (maybe delivered), never resent
    fcm_timeout_s: float = Field(default=10.0, gt=0)

    # settlement and payouts (beat): statements are closed hourly (once per driver-day),
    # payouts tried every `payout_interval_s`, a refused one again after `payout_retry_s`
    settlement_interval_s: float = 3600.0
    payout_interval_s: float = 600.0
    payout_retry_s: float = PAYOUT_RETRY_S
    # reconciliation sweeps (beat): how long a state may last before it counts as stuck
    sweep_interval_s: float = 60.0
    # the repair sweeps' deadlines (domain.usecases.sweeps.Deadlines), passed by beat
    sweep_payment_after_s: float = _DEADLINES.payment_after_s
    sweep_hold_ended_s: float = _DEADLINES.hold_ended_s
    sweep_hold_expiry_margin_s: float = _DEADLINES.hold_expiry_margin_s
    sweep_webhook_after_s: float = _DEADLINES.webhook_after_s
    sweep_ride_unstarted_s: float = _DEADLINES.ride_unstarted_s
    sweep_ride_silent_s: float = _DEADLINES.ride_silent_s
    # where Stripe sends a driver back after (or instead of) onboarding their payout account
    public_url: str = "http://127.0.0.1:8000"

    # the reference passenger and driver app (`GET /app`), served in development: its
    # built files (`npm run build` in clients/app; the bootstrap does it) and the map's
    # raster tiles, e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png (empty: the map
    # draws its vector layers alone, as offline and in the tests)
    app_enabled: bool | None = None  # None: on in development only
    app_dir: Path = _REPO / "clients" / "app" / "dist"
    app_tile_url: str = ""
    app_tile_attribution: str = ""

    max_body_bytes: int = 256 * 1024
    max_route_m: int = 200_000
    login_attempts_per_minute: int = 10
    outbox_redispatch_after_s: int = 60

    # live location
    ping_interval_on_ride_s: int = _LIVE.ping_interval_on_ride_s
    ping_interval_idle_s: int = _LIVE.ping_interval_idle_s
    ping_rate_limit: int = 60  # requests per driver per window
    ping_rate_window_s: int = 10
    ping_batch_max: int = 500
    driver_stale_s: int = 60
    eta_interval_s: float = _LIVE.eta_interval_s
    arriving_push_s: int = (
        _LIVE.arriving_push_s
    )  # "your driver is arriving" once the ETA to the pickup is this
    sse_keepalive_s: float = 15.0

    # Rules of the domain, held as the domain's own values (their defaults and checks
    # live there, written once). Each field is a variable `RIDEHAIL_<GROUP>_<FIELD>`:
    # RIDEHAIL_FARE_PER_KM, RIDEHAIL_DISPATCH_WAVE_SIZE, RIDEHAIL_FRAUD_RIDES_PER_HOUR,
    # RIDEHAIL_FIXES_MAX_SPEED_MS (the checks on a location fix), RIDEHAIL_RATING_ALERT_BELOW.
    fare: FareRules = FareRules()
    dispatch: DispatchRules = DispatchRules()
    fraud: FraudRules = FraudRules()
    fixes: PingRules = PingRules()
    rating: RatingRules = RatingRules()
    detour_factor: float = _LIVE.detour_factor
    average_speed_kmh: float = _LIVE.average_speed_kmh

    @model_validator(mode="after")
    def _derive_and_check(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.data_dir / 'ridehail.db').as_posix()}"
        if not self.broker_url:
            if self.redis_cluster:
                raise ValueError(
                    "RIDEHAIL_BROKER_URL must name a Redis of its own when live state is on "
                    "a cluster (RIDEHAIL_REDIS_CLUSTER): Celery's broker speaks no cluster"
                )
            self.broker_url = self.redis_url
        if self.environment == "production":
            if self.jwt_secret == DEV_JWT_SECRET or len(self.jwt_secret) < 32:
                raise ValueError(
                    "RIDEHAIL_JWT_SECRET must be set to a random secret of 32+ characters "
                    "in production"
                )
            if self.flower_password == DEV_FLOWER_PASSWORD or len(self.flower_password) < 12:
                raise ValueError(
                    "RIDEHAIL_FLOWER_PASSWORD must be set to a password of 12+ characters "
                    "in production"
                )
        return self

    @property
    def broker_via_sentinel(self) -> bool:
        return self.broker_url.startswith("sentinel://")

    @property
    def app_served(self) -> bool:
        return self.environment == "development" if self.app_enabled is None else self.app_enabled

    @property
    def stripe_js_url(self) -> str:
        """Where pages load Stripe.js: Stripe's own, or the stand-in's offline."""
        if self.stripe_api_key:
            return "https://js.stripe.com/v3/"
        return f"{self.stripe_api_base.rstrip('/')}/js.stripe.com/v3/"

    @property
    def stripe_key_for_devices(self) -> str:
        """The publishable key the apps' Stripe SDK uses ("" when cards are not set up)."""
        if self.stripe_publishable_key:
            return self.stripe_publishable_key
        return "" if self.stripe_api_key else "pk_test_standin"

    @property
    def live_rules(self) -> LiveRules:
        """The live view's rules (pings' pace, ETAs, the arriving notice) for the domain."""
        return LiveRules(
            ping_interval_on_ride_s=self.ping_interval_on_ride_s,
            ping_interval_idle_s=self.ping_interval_idle_s,
            eta_interval_s=self.eta_interval_s,
            arriving_push_s=self.arriving_push_s,
            average_speed_kmh=self.average_speed_kmh,
            detour_factor=self.detour_factor,
        )


@lru_cache
def get_settings() -> Settings:
    return Settings()
