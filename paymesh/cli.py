"""The `paymesh` command."""

import argparse
import asyncio
import sys

from paymesh import mesh, pki
from paymesh.config import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="paymesh", description="The paymesh payment mesh.")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="run the whole mesh locally until Ctrl-C")
    up.add_argument("--check", action="store_true", help="stop as soon as every service is SERVING")
    commands.add_parser("pki", help="create the dev CA and certificates (keeps what is still valid)")
    commands.add_parser("health", help="health of a running mesh")
    args = parser.parse_args(argv)

    if args.command == "pki":
        settings = Settings.from_env()
        written = pki.ensure_dev_pki(settings.pki_dir)
        print(f"{len(written)} certificates written under {settings.pki_dir}" if written
              else f"dev PKI under {settings.pki_dir} is complete and valid; nothing written")
        return 0
    if args.command == "up":
        return asyncio.run(mesh.up(check_only=args.check))
    return asyncio.run(mesh.health_table())


if __name__ == "__main__":
    sys.exit(main())
