"""`vton eval` and `vton tryon`: metrics on a test split, try-on images for user inputs."""

from __future__ import annotations

import argparse

from orchestrator.cli.common import UserError


def _cmd_eval(args: argparse.Namespace) -> int:
    """Thin: options -> orchestrator.evaluate.run_eval -> table + JSON."""
    from cluster.settings import apply_stack_env

    apply_stack_env(urls=[args.data or "", args.checkpoint or ""])
    import vton_models  # noqa: F401  - torchvision CPU shim first
    from orchestrator.evaluation.evaluate import run_eval
    from orchestrator.registry.models import ModelError
    from vton_models.weights import MissingWeightsError

    try:
        if args.pred_dir:
            result = _score_folders(args)
        elif not args.data:
            raise UserError("--data: the test split's manifest.json URL is required with --model / --checkpoint")
        else:
            result = run_eval(args.model or args.checkpoint, args.data, pairs=args.pairs, workers=args.workers,
                              threads_per_worker=args.threads, log_to_mlflow=not args.no_mlflow,
                              fid_dims=args.fid_dims, teacher_forced=args.teacher_forced, is_splits=args.is_splits,
                              mask_region=args.mask)
    except (ModelError, MissingWeightsError) as exc:
        raise UserError(str(exc)) from None
    print(result.table())
    if result.mlflow_run_id:
        print(f"  MLflow run: {result.mlflow_run_id}")
    if args.out:
        from pathlib import Path

        Path(args.out).write_text(result.to_json())
        print(f"  wrote {args.out}")
    return 0


def _score_folders(args: argparse.Namespace):
    from orchestrator.evaluation.folders import score_folders

    if not args.gt_dir or args.data:
        raise UserError("--pred-dir needs --gt-dir (the photos), and no --data")
    size = None
    if args.size:
        try:
            size = tuple(int(v) for v in args.size.lower().split("x"))
        except ValueError:
            raise UserError(f"--size {args.size!r}: expected HEIGHTxWIDTH, e.g. 1024x768") from None
    return score_folders(args.pred_dir, args.gt_dir, pairs=args.pairs, image_size=size, fid_dims=args.fid_dims)


def _cmd_tryon(args: argparse.Namespace) -> int:
    from cluster.settings import apply_stack_env

    apply_stack_env()
    import vton_models  # noqa: F401
    from orchestrator.registry.models import ModelError
    from orchestrator.evaluation.tryon import run_tryon

    try:
        paths = run_tryon(args.model, args.person, args.cloth, args.out, pose=args.pose, parse=args.parse,
                          cloth_mask=args.cloth_mask, batch_size=args.batch_size, pose_image=args.pose_image,
                          target_pose=args.target_pose)
    except ModelError as exc:
        raise UserError(str(exc)) from None
    print(f"wrote {len(paths) - 1} try-on images and {paths[-1]}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a registered model or a checkpoint on a shard set (on Ray)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="models:/NAME@ALIAS, models:/NAME/VERSION, models:/m-ID, runs:/RUN/PATH "
                                        "or a registered NAME (its latest version)")
    source.add_argument("--checkpoint", help="training checkpoint URL: s3://BUCKET/.../RUN/checkpoint_<time>/")
    source.add_argument("--pred-dir", default=None,
                        help="a folder of images generated elsewhere (another project's outputs), scored against "
                             "--gt-dir under the same protocol; paired by file stem")
    p.add_argument("--data", default=None, help="URL of a test split's manifest.json (with --model / --checkpoint)")
    p.add_argument("--gt-dir", default=None, help="with --pred-dir: the folder of the real photos")
    p.add_argument("--size", default=None, metavar="HxW",
                   help="with --pred-dir: resize every image to this (default: the first photo's size)")
    p.add_argument("--pairs", choices=["paired", "unpaired"], default="paired",
                   help="paired (default): each person in their own garment, scored against the photo; "
                        "unpaired: another person's garment, distribution metrics only (FID, KID, IS)")
    p.add_argument("--out", default=None, help="write the results JSON here")
    p.add_argument("--workers", type=int, default=1, help="Ray tasks, one shard split each")
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads per worker (default 0: this machine's cores shared by the workers)")
    p.add_argument("--no-mlflow", action="store_true", help="do not log an MLflow run")
    p.add_argument("--teacher-forced", action="store_true",
                   help="allow a teacher-forced training stage (VITON-HD's alias/gmm read the ground-truth parse); "
                        "its results are labelled so. The try-on numbers are the family's chain's")
    p.add_argument("--fid-dims", type=int, default=2048, choices=[64, 192, 768, 2048],
                   help="Inception features for FID/KID; only 2048 is the protocol (smaller: smoke tests)")
    p.add_argument("--is-splits", type=int, default=1,
                   help="also report IS and mask-IS as mean +- std over this many splits (papers' 10; default: "
                        "one split only)")
    p.add_argument("--mask", default="foreground",
                   help="what mask-SSIM and mask-IS keep of the real person: foreground (default, seed 002's), "
                        "cloth or face_hair (seed 004's regions)")
    p.set_defaults(handler=_cmd_eval)

    p = sub.add_parser("tryon", help="try-on images from a registered model")
    p.add_argument("--model", required=True, help="models:/NAME@ALIAS, models:/NAME/VERSION, models:/m-ID, "
                                                   "runs:/RUN/PATH or a registered NAME (its latest version)")
    p.add_argument("--person", required=True, help="person image, or a folder in the VITON-HD layout")
    p.add_argument("--cloth", required=True, help="in-shop cloth image")
    p.add_argument("--cloth-mask", default=None, help="cloth mask (default: ../cloth-mask/<cloth name>)")
    p.add_argument("--pose", default=None, help="OpenPose JSON for a single --person image")
    p.add_argument("--parse", default=None, help="LIP label PNG for a single --person image")
    p.add_argument("--pose-image", default=None,
                   help="OpenPose's rendered pose PNG for a single --person image (VITON-HD's models read it; "
                        "without it the pose is drawn from --pose)")
    p.add_argument("--target-pose", default=None,
                   help="OpenPose JSON of the pose to render the person in (multi-pose models: tree_block, spg_vton)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--batch-size", type=int, default=8, help="images per forward pass (default 8)")
    p.set_defaults(handler=_cmd_tryon)
