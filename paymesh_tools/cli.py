"""The `paymesh` command. Each subcommand lives in its own module with
add_arguments(parser) and run(args) -> exit code; COMMANDS lists them."""

import argparse
import importlib
import sys

# name -> (module, help). A new subcommand is one line here plus its module.
COMMANDS = {
    "simulate-day": ("paymesh_tools.simulate_day", "run a whole business day of ~10,000 payments end to end"),
    "up": ("paymesh_tools.mesh", "run the whole mesh locally until Ctrl-C"),
    "health": ("paymesh_tools.probe", "health of a running mesh"),
    "pki": ("paymesh_tools.dev_pki", "create the dev CA and certificates (keeps what is still valid)"),
    "k8s-secrets": ("paymesh_tools.k8s_secrets", "write the dev Kubernetes overlay's TLS material from the dev PKI"),
    "token": ("paymesh_tools.dev_tokens", "mint a dev end-user JWT for the digital channels"),
    "batch": ("paymesh_tools.batch_upload", "upload a channel's day file to the router"),
    "close-day": ("paymesh_tools.close_day", "close a business day at the ledger: the end-of-day file to the "
                  "mainframe"),
    "reconcile": ("paymesh_tools.reconcile", "compare the day item by item across router, cores, bridge, mainframe and "
                  "confirmations"),
    "archive": ("paymesh_tools.archive", "write a closed, reconciled day to files an auditor can read (reconcile "
                "--archive reads them)"),
    "loans": ("paymesh_tools.loans", "import the origination system's loan master file into a core"),
    "outbox": ("paymesh_tools.outbox", "the router's outbox rows its peers refused: list them, replay them"),
    "store": ("paymesh_tools.store_backup", "consistent online backups of the SQLite stores, and their restore"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="paymesh", description="The paymesh payment mesh.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    modules = {}
    for name, (module_name, help_text) in COMMANDS.items():
        module = modules[name] = importlib.import_module(module_name)
        module.add_arguments(subparsers.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    return modules[args.command].run(args)


if __name__ == "__main__":
    sys.exit(main())
