from __future__ import annotations

import pytest


def test_production_refuses_the_development_secret() -> None:
    from pydantic import ValidationError

    from infra.settings import DEV_JWT_SECRET, Settings

    with pytest.raises(ValidationError, match="JWT_SECRET"):
        Settings(environment="production", jwt_secret=DEV_JWT_SECRET)
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        Settings(environment="production", jwt_secret="short")
    ok = Settings(environment="production", jwt_secret="x" * 40, database_url="", data_dir="/srv")
    assert ok.database_url == "sqlite:////srv/ridehail.db"
