"""The CLI's API commands: ``reconciler serve`` and ``reconciler tokens create | list | revoke``.

``reconciler.cli`` adds these parsers and hands the parsed arguments here; this module imports only the standard
library at start (the CLI's start-up cost, ``tests/unit/test_cli_imports.py``), the store and the app in the command.
A token is printed once, at creation; only its SHA-256 is stored.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reconciler.runtime.settings import Settings

COMMANDS = ("serve", "tokens")


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser("serve", help="serve the HTTP API and the operator console (RECONCILER_API_LISTEN)")
    serve.add_argument("--listen", help="address:port (default RECONCILER_API_LISTEN, 127.0.0.1:8090)")
    tokens = sub.add_parser("tokens", help="API and console accounts").add_subparsers(
        dest="tokens_command", required=True
    )
    create = tokens.add_parser("create", help="create an account and print its token (shown once)")
    create.add_argument("name")
    create.add_argument("--role", choices=("viewer", "operator", "admin"), required=True)
    create.add_argument("--locale", choices=("en", "fa"), default="en", help="the console's language for it")
    create.add_argument(
        "--password-stdin", action="store_true", help="read a console password from standard input (first line)"
    )
    create.add_argument("--password", action="store_true", help="prompt for a console password")
    tokens.add_parser("list", help="list accounts (never their tokens)")
    revoke = tokens.add_parser("revoke", help="revoke an account's token and password")
    revoke.add_argument("name")


def run_command(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "serve":
        from reconciler.api.app import serve

        if args.listen:
            settings = settings.model_copy(update={"api_listen": args.listen})
        return serve(settings)
    return _tokens(args, settings)


def _tokens(args: argparse.Namespace, settings: Settings) -> int:
    from desired_state.access import AccessError, create_token, list_accounts, revoke_token
    from desired_state.database import make_engine

    engine = make_engine(settings.database_url)
    try:
        if args.tokens_command == "create":
            password = None
            if args.password_stdin:
                password = sys.stdin.readline().rstrip("\n")
            elif args.password:
                password = getpass.getpass(f"console password for {args.name}: ")
            try:
                account, token = create_token(engine, args.name, args.role, password=password, locale=args.locale)
            except AccessError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
            print(f"created account {account.name} ({account.role}); its token, shown this once:", file=sys.stderr)
            print(token)
            return 0
        if args.tokens_command == "list":
            for a in list_accounts(engine):
                state = f"revoked {a.revoked_at:%Y-%m-%d}" if a.revoked_at else "live"
                used = f"{a.last_used_at:%Y-%m-%d %H:%M}" if a.last_used_at else "never"
                password = " password" if a.has_password else ""
                print(f"{a.name:<24} {a.role:<9} {a.locale} {state:<18} last used {used}{password}")
            return 0
        if not revoke_token(engine, args.name):
            print(f"error: no live account {args.name!r}", file=sys.stderr)
            return 1
        print(f"revoked {args.name}")
        return 0
    finally:
        engine.dispose()
