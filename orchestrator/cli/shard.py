"""`vton shard synth|build|verify`: datasets -> WebDataset shards on object storage."""

from __future__ import annotations

import argparse
import json
import sys

from orchestrator.cli.common import UserError
from orchestrator.failures import classify


def _parse_size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"--size {text!r}: expected HEIGHTxWIDTH, e.g. 64x48") from None
    return height, width


def _shard_size(text: str) -> str:
    """--shard-size needs a unit: a bare ``4`` meant 4 bytes, a shard per sample, silently."""
    from shards.writer import parse_size

    if text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} has no unit: write e.g. 256MB, 64MiB or {text}B for bytes")
    try:
        parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _cmd_shard(args: argparse.Namespace) -> int:
    from cluster.settings import apply_stack_env

    url = getattr(args, "dest", None) or getattr(args, "manifest", None) or ""
    apply_stack_env(urls=[url])
    if url:
        from shards.store import check_reachable

        check_reachable(url)  # seconds, not botocore's ~15 s of retries, for a wrong or stopped endpoint
    if args.action == "synth":
        from shards.synthetic import synthesize_layout

        try:
            report = synthesize_layout(args.layout, args.out, n=args.n, size=_parse_size(args.size), seed=args.seed)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        print(json.dumps(report, indent=2, default=str))
        return 0
    if args.action == "build":
        from shards.writer import build_shards

        options = {}
        for item in args.layout_option or []:
            name, sep, value = item.partition("=")
            if not sep or not name:
                raise UserError(f"--layout-option {item!r}: expected NAME=VALUE (e.g. subset=frontal.txt)")
            options[name] = value
        from shards.store import require_explicit_endpoint

        try:
            where = require_explicit_endpoint(args.dest)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        if args.dest.startswith("s3://"):  # which server it goes to is not in the URL: say it first
            print(f"[vton] writing to {where}", file=sys.stderr, flush=True)
        try:
            manifest = build_shards(args.layout, args.src, args.split, args.dest, shard_size_bytes=args.shard_size,
                                    workers=args.workers, strict=not args.skip_bad, layout_options=options,
                                    progress=True)
        except (ValueError, FileNotFoundError) as exc:
            if classify(exc) is not None:
                raise  # a bad sample, image or list line: exit status 4 (data), one line naming it
            raise UserError(str(exc)) from None
        stats = manifest.build_stats
        print(f"{stats.manifest_url}: {stats.samples} samples in {stats.shards} shards "
              f"({stats.uploaded} uploaded, {stats.skipped} already stored) in {stats.seconds:.1f}s"
              + (f"; {stats.skipped_sources} bad source sample(s) skipped (--skip-bad; each is logged above)"
                 if stats.skipped_sources else ""))
        return 0
    from shards.writer import verify_shards

    report = verify_shards(args.manifest, show_progress=True)
    print(report.summary())
    return 0 if report.ok else 1


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("shard", help="dataset -> WebDataset shards on object storage")
    shard_sub = p.add_subparsers(dest="action", required=True, metavar="ACTION", help="synth | build | verify")
    synth = shard_sub.add_parser("synth", help="write a synthetic dataset in a dataset's own on-disk layout")
    synth.add_argument("--layout", default="viton_hd", help="viton_hd (default) | viton | mpv | dresscode")
    synth.add_argument("--out", required=True, help="directory to write the dataset into")
    synth.add_argument("--n", type=int, default=64, help="people to draw (default 64; 3/4 train, 1/4 test)")
    synth.add_argument("--size", default="64x48", help="HEIGHTxWIDTH")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0): the same seed, the same images")
    build = shard_sub.add_parser("build", help="write tar shards + manifest.json to s3:// or file://")
    build.add_argument("--layout", required=True, help="viton_hd | viton | mpv | mpv_triplets | dresscode")
    build.add_argument("--src", required=True, help="the dataset's root directory on local disk")
    build.add_argument("--split", required=True, help="train, test, ...: the split to shard (also the shard name prefix)")
    build.add_argument("--dest", required=True, help="s3://bucket/prefix/ or file:///abs/dir")
    build.add_argument("--shard-size", default="256MB", type=_shard_size, metavar="SIZE",
                       help="target size of a shard with a unit: 256MB (default), 64MiB, 1GB")
    build.add_argument("--workers", type=int, default=None,
                       help="writer processes (default: one per CPU, at most one per shard)")
    build.add_argument("--skip-bad", "--skip-incomplete", dest="skip_bad", action="store_true",
                       help="skip (and count) samples with a missing or unusable file instead of failing")
    build.add_argument("--layout-option", action="append", metavar="NAME=VALUE",
                       help="a layout's own option, repeatable: mpv_triplets subset=FILE (only those triplets); "
                            "dresscode categories=upper_body,dresses")
    verify = shard_sub.add_parser("verify", help="re-read every shard: sha256 + decode every sample")
    verify.add_argument("manifest", help="URL of manifest.json")
    p.set_defaults(handler=_cmd_shard)
