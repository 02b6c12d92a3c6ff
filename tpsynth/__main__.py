"""Command-line interface: ``python -m tpsynth validate | import-cochrane | bench-corpus ...``."""

from __future__ import annotations

import argparse
import sys

from .config import ConfigError, load_config
from .validate import exclusion_warnings, format_problems, validate_sheets


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
    rob = args.risk_of_bias if args.risk_of_bias is not None else data.get("risk_of_bias")
    sheets, problems = validate_sheets(studies, outcomes, contrasts or None, config, args.config, risk_of_bias=rob or None)
    if problems:
        print(format_problems(problems), file=sys.stderr)
        return 1
    counts = f"{len(sheets.studies)} studies, {len(sheets.outcomes)} outcome rows, {len(sheets.contrasts)} contrast rows"
    if sheets.risk_of_bias:
        counts += f", {len(sheets.risk_of_bias)} risk-of-bias rows"
    warnings = sheets.warnings + exclusion_warnings(sheets, config)
    if not warnings:
        print(f"OK: {counts}")
        return 0
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    n = len(warnings)
    print(
        f"Valid, with {n} warning{'s' if n != 1 else ''}: {counts}; see the warnings above "
        "(data/processed/dataflow.csv records every row's fate)"
    )
    return 1 if args.strict else 0


def _cmd_bench_corpus(args: argparse.Namespace) -> int:
    from .corpus import bench_corpus

    if args.shards < 1 or not 1 <= args.shard <= args.shards:
        print(f"--shard must be between 1 and --shards ({args.shards}); found {args.shard}", file=sys.stderr)
        return 2
    try:
        bench_corpus(args.path, args.out, args.skipped, shard=args.shard - 1, shards=args.shards, quiet=args.quiet)
    except FileNotFoundError as err:
        print(f"{args.path}: {err.strerror or err}", file=sys.stderr)
        return 1
    return 0


def _cmd_import_cochrane(args: argparse.Namespace) -> int:
    from .cochrane import CochraneImportError, import_cochrane

    try:
        summary = import_cochrane(args.file, args.out, review=args.review, analysis=args.analysis)
    except CochraneImportError as err:
        print(err, file=sys.stderr)
        return 1
    print(summary)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["run"]:  # every later argument goes to Snakemake unchanged
        from .run import run

        return run(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m tpsynth", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "run",
        help="run the pipeline (snakemake ARGS...) with one line per job, recovering after a crash",
        description="python -m tpsynth run [SNAKEMAKE ARGS]: see tpsynth/run.py.",
    )
    v = sub.add_parser("validate", help="check the extraction sheets and report every problem")
    v.add_argument("--config", default="config/config.yaml", help="config file (default: %(default)s)")
    v.add_argument("--studies", help="studies sheet (default: data.studies in the config)")
    v.add_argument("--outcomes", help="outcomes sheet (default: data.outcomes in the config)")
    v.add_argument("--contrasts", help="contrasts sheet (default: data.contrasts in the config; '' for none)")
    v.add_argument("--risk-of-bias", help="risk-of-bias sheet (default: data.risk_of_bias in the config; '' for none)")
    v.add_argument("--strict", action="store_true", help="exit with status 1 when there are warnings")
    v.set_defaults(func=_cmd_validate)

    b = sub.add_parser(
        "bench-corpus",
        help="re-analyse every analysis of a Cochrane corpus (Pairwise70 layout) in one vectorised pass",
        description="Pool every analysis of the corpus (SMD or log RR; REML, HKSJ, prediction interval, "
        "Q-profile I² CI, Egger for k >= 10); progress, speed and peak memory go to stderr.",
    )
    b.add_argument("path", help="corpus CSV (gzip allowed), e.g. ../shared/data/pairwise70/pairwise70.csv.gz")
    b.add_argument("--out", default="results/corpus/pooled.csv", help="pooled table (default: %(default)s)")
    b.add_argument("--skipped", help="table of skipped analyses with reasons (default: OUT with .skipped before .csv)")
    b.add_argument("--shard", type=int, default=1, help="which shard to run, 1..SHARDS (default: %(default)s)")
    b.add_argument("--shards", type=int, default=1, help="number of shards (default: %(default)s)")
    b.add_argument("--quiet", action="store_true", help="no progress or summary on stderr")
    b.set_defaults(func=_cmd_bench_corpus)

    c = sub.add_parser(
        "import-cochrane",
        help="turn Cochrane 'data and analyses' rows (Pairwise70 layout) into extraction sheets and a config",
        description="Write DIR/data/raw/{studies,outcomes,contrasts}.csv and DIR/config/config.yaml from "
        "one Cochrane review (or one analysis of it); the result runs through the pipeline.",
    )
    c.add_argument("file", help="CSV (gzip allowed) in the Pairwise70 column layout")
    c.add_argument("--review", help="review id, e.g. CD004871_pub5 (required when FILE holds several)")
    c.add_argument("--analysis", help="one analysis as G.N (comparison G, outcome N); default: all")
    c.add_argument("--out", required=True, help="directory to write (created)")
    c.set_defaults(func=_cmd_import_cochrane)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
