"""`blip2-search train-demo OUT`: trains the demo model from scratch on the shapes world."""

from __future__ import annotations

import argparse
from pathlib import Path

from .output import emit, warn


def register(sub, parents: list[argparse.ArgumentParser]) -> None:
    train = sub.add_parser("train-demo", parents=parents, help="train the demo model from scratch")
    train.add_argument("out", help="folder for the trained retrieval/ and generation/ checkpoints")
    train.add_argument("--minutes", type=float, default=58.0, help="training time budget (default 58)")
    train.add_argument("--max-steps", type=int, help="stop after this many steps instead")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--shape-focus", type=float, default=0.0, metavar="F",
                       help="share of the first steps spent on shape-only questions and negatives")
    train.add_argument("--vision-minutes", type=float, default=28.0, metavar="M",
                       help="stage 0: minutes (within --minutes) pretraining the image encoder alone")
    train.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from demo.training import DemoConfig, train

    config = DemoConfig(minutes=args.minutes, seed=args.seed, max_steps=args.max_steps,
                        shape_focus=args.shape_focus, vision_minutes=args.vision_minutes)
    report = train(Path(args.out), config, log=(lambda line: None) if args.json else warn)
    emit(args, {k: v for k, v in report.items() if k != "history"},
         [f"trained {report['steps']} steps in {report['seconds']} s; the model is in {args.out}"])
    return 0
