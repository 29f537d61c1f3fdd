"""`ridehail`: the command line (`migrate`, `create-admin`, `run`, `simulate`)."""

from __future__ import annotations

import argparse
import sys

from domain.errors import DomainError


def _migrate(_args: argparse.Namespace) -> int:
    from infra.migrate import upgrade_head

    upgrade_head()
    print("database is at the latest migration")
    return 0


def _create_admin(args: argparse.Namespace) -> int:
    from infra.db import session_scope
    from infra.migrate import upgrade_head
    from infra.users import create_user

    if len(args.password) < 8:
        print("password must have at least 8 characters", file=sys.stderr)
        return 2
    upgrade_head()
    try:
        with session_scope() as session:
            user = create_user(
                session, email=args.email, password=args.password, name=args.name, role="admin"
            )
    except DomainError as exc:
        print(exc.detail, file=sys.stderr)
        return 1
    print(f"admin {user.email} created ({user.id})")
    return 0


def _dev(module: str, command: str, argv: list[str]) -> int:
    """Development commands live with the development tools, outside the product: each runs
    as its own program from the source checkout this package was installed from (editable,
    as `make run` does); an installed wheel has no such checkout."""
    import os
    from pathlib import Path

    import infra

    checkout = Path(infra.__file__).resolve().parent.parent
    if not (checkout / "devtools" / f"{module}.py").is_file():
        print(
            f"`ridehail {command}` is a development command: run it from a source checkout "
            "(`make run`), where the devtools package is",
            file=sys.stderr,
        )
        return 2
    path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(checkout), path) if p)
    os.execv(sys.executable, [sys.executable, "-m", f"devtools.{module}", *argv])


def _metrics(_args: argparse.Namespace) -> int:
    from infra.metrics import serve
    from infra.settings import get_settings

    settings = get_settings()
    serve(settings.metrics_host, settings.metrics_port)
    return 0


def _run(_args: argparse.Namespace) -> int:
    return _dev("stack", "run", [])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["simulate"]:  # its options are the simulator's own
        return _dev("simulate", "simulate", argv[1:])
    parser = argparse.ArgumentParser(prog="ridehail", description="ridehail backend")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(fn=_migrate)
    admin = sub.add_parser("create-admin", help="create an admin account")
    admin.add_argument("--email", required=True)
    admin.add_argument("--password", required=True)
    admin.add_argument("--name", default="Admin")
    admin.set_defaults(fn=_create_admin)
    sub.add_parser("run", help="run the whole stack until Ctrl-C").set_defaults(fn=_run)
    sub.add_parser(
        "metrics", help="serve Prometheus's scrape of this host on RIDEHAIL_METRICS_PORT"
    ).set_defaults(fn=_metrics)
    sub.add_parser(
        "simulate",
        help="a fleet of drivers and passengers against a running stack (--help for options)",
    )
    args = parser.parse_args(argv)
    return int(args.fn(args))


if __name__ == "__main__":
    raise SystemExit(main())
