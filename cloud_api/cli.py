"""`cloud-api`: the cloud service's command line. The service itself arrives with issue #5; until then
this entry point only reports its version, so packaging and install paths are exercised."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cloud_api import __version__


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cloud-api", description="Cashierless store cloud API.")
    parser.add_argument("--version", action="version", version=f"cloud-api {__version__}")
    parser.parse_args(argv)
    parser.print_help()
    print("\nNo commands yet: serve, migrate and seed come with the cloud service.", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
