"""`cloud-api`: serve the API, apply migrations, seed a store."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cloud_api import __version__

if TYPE_CHECKING:
    from cloud_api.core.config import Settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cloud-api", description="Cashierless store cloud API.")
    parser.add_argument("--version", action="version", version=f"cloud-api {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP API (uvicorn)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--no-migrate", action="store_true", help="do not apply migrations at start")
    serve.add_argument("--quiet", action="store_true", help="warnings only, no access log")
    sub.add_parser("migrate", help="apply database migrations (DATABASE_URL; SQLite file by default)")
    seed = sub.add_parser("seed", help="load a store file and create demo accounts and device keys")
    seed.add_argument("--store", required=True, help="store layout YAML (sample_data/stores/demo.yaml)")
    seed.add_argument("--config", help="cloud-side store settings YAML: tax_rate, preauth, promotions")
    seed.add_argument("--no-demo-accounts", action="store_true")
    seed.add_argument("--shoppers", type=int, default=0, help="also create N test-mode shopper accounts")
    seed.add_argument("--json", action="store_true", help="print the new keys as JSON (for scripts)")
    staff = sub.add_parser("staff", help="create a staff member with a console login, or set a password")
    staff_sub = staff.add_subparsers(dest="staff_command", required=True)
    create = staff_sub.add_parser("create", help="a staff member: console login and API key (shown once)")
    create.add_argument("--id", required=True, help="staff id, also a login name")
    create.add_argument("--name", required=True)
    create.add_argument("--role", required=True, choices=("reviewer", "manager", "admin"))
    create.add_argument("--store-id", help="the store they work for (every store if absent: admins only)")
    create.add_argument("--email", help="another login name")
    passwd = staff_sub.add_parser("password", help="set a staff member's console password (ends their sessions)")
    passwd.add_argument("--id", required=True)
    for p in (create, passwd):
        p.add_argument(
            "--password-file",
            help="read the password from this file (else CLOUD_API_STAFF_PASSWORD, else asked for at the terminal)",
        )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from cloud_api.core.config import load_settings
    from cloud_api.db import migrate
    from cloud_api.db.session import make_engine

    settings = load_settings()
    if args.command == "migrate":
        engine = make_engine(settings)
        migrate.upgrade(engine)
        print(f"migrated {engine.url.render_as_string(hide_password=True)} to head")
        return 0
    if args.command == "seed":
        from cloud_api.services.container import build_container
        from cloud_api.services.seed import StoreConfig
        from cloud_api.services.seed import seed as run_seed

        c = build_container(settings)
        migrate.upgrade(c.engine)
        result = run_seed(
            c,
            args.store,
            StoreConfig.load(args.config),
            demo_accounts=not args.no_demo_accounts,
            shoppers=args.shoppers,
        )
        if args.json:
            keys = {
                "devices": result.devices,
                "staff": result.staff,
                "shoppers": result.shoppers,
                "console": {"path": "/console/", "logins": result.logins},
            }
            print(json.dumps({"store_id": result.store_id} | keys, indent=2))
            return 0
        print(f"store {result.store_id}: {result.products} products, {result.promotions} promotions")
        if result.keys:
            print("New keys (shown once, stored hashed):")
            for label, key in result.keys.items():
                print(f"  {label}: {key}")
        return 0
    if args.command == "staff":
        return _staff_command(args, settings)
    import uvicorn

    if not args.no_migrate:
        migrate.upgrade(make_engine(settings))
    uvicorn.run(
        "cloud_api.main:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="warning" if args.quiet else "info",
        access_log=not args.quiet,
    )
    return 0


def _password(args: argparse.Namespace) -> str:
    import getpass
    import os
    from pathlib import Path

    if args.password_file:
        return Path(args.password_file).read_text().strip()
    return os.environ.get("CLOUD_API_STAFF_PASSWORD") or getpass.getpass("password: ")


def _staff_command(args: argparse.Namespace, settings: Settings) -> int:
    from cloud_api.db import migrate
    from cloud_api.services import staff_auth
    from cloud_api.services.container import build_container
    from cloud_api.services.errors import ApiError

    c = build_container(settings)
    migrate.upgrade(c.engine)
    try:
        if args.staff_command == "create":
            staff, key = staff_auth.create_staff(
                c, args.id, args.name, args.role, args.store_id, args.email, _password(args)
            )
            print(f"staff {staff.id} ({staff.role}, store {staff.store_id or 'every store'}) can log in at /console/")
            print(f"API key (shown once, stored hashed): {key}")
        else:
            staff_auth.set_password(c, args.id, _password(args))
            print(f"password of {args.id} set; their console sessions are ended")
    except ApiError as e:
        print(f"cloud-api staff: {e.message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
