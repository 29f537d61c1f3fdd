"""Insert bench users and print their access tokens as JSON: `_seed.py DRIVERS PASSENGERS`.

Run with the bench stack's environment (RIDEHAIL_DATA_DIR etc.). Registering through
`POST /auth/register` + `/auth/token` costs two Argon2 computations (~50 ms each) per
user, minutes for 2,000 users on 2 cores; here every user shares one hash and the
tokens are issued with the server's own secret, exactly as `/auth/token` would.
"""

from __future__ import annotations

import json
import sys
import uuid

from infra.db import session_scope
from infra.models import User
from infra.security import hash_password, issue_token

TOKEN_TTL_S = 3 * 3600


def main(drivers: int, passengers: int) -> None:
    run = uuid.uuid4().hex[:8]
    shared_hash = hash_password("bench-password-1")
    out: dict[str, list[dict[str, str]]] = {"drivers": [], "passengers": []}
    with session_scope() as session:
        for role, count, key in (
            ("driver", drivers, "drivers"),
            ("passenger", passengers, "passengers"),
        ):
            for n in range(count):
                user = User(
                    email=f"bench-{run}-{role}-{n}@example.com",
                    name=f"bench {role} {n}",
                    role=role,
                    password_hash=shared_hash,
                )
                session.add(user)
                out[key].append(
                    {
                        "id": str(user.id),
                        "token": issue_token(user.id, role, "access", TOKEN_TTL_S),
                    }
                )
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
