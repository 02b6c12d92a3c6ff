"""Command-line interface: ``python -m tpsynth validate ...``."""

from __future__ import annotations

import argparse
import sys

from .config import ConfigError, load_config
from .validate import format_problems, validate_sheets


def _cmd_validate(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 1
    data = config["data"]
    studies = args.studies or data["studies"]
    outcomes = args.outcomes or data["outcomes"]
    contrasts = args.contrasts if args.contrasts is not None else data.get("contrasts")
    sheets, problems = validate_sheets(studies, outcomes, contrasts or None, config, args.config)
    if problems:
        print(format_problems(problems), file=sys.stderr)
        return 1
    print(
        f"OK: {len(sheets.studies)} studies, {len(sheets.outcomes)} outcome rows, "
        f"{len(sheets.contrasts)} contrast rows"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tpsynth", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("validate", help="check the extraction sheets and report every problem")
    v.add_argument("--config", default="config/config.yaml", help="config file (default: %(default)s)")
    v.add_argument("--studies", help="studies sheet (default: data.studies in the config)")
    v.add_argument("--outcomes", help="outcomes sheet (default: data.outcomes in the config)")
    v.add_argument("--contrasts", help="contrasts sheet (default: data.contrasts in the config; '' for none)")
    v.set_defaults(func=_cmd_validate)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
