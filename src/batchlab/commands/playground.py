"""``batchlab playground``: write the browser playground, one self-contained HTML file."""

from __future__ import annotations

import argparse
import webbrowser
from pathlib import Path

from batchlab.commands._options import output_file

DEFAULT_OUT = Path("playground.html")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "playground",
        help="write an offline HTML page where you drag η, λ and the batch size and watch the ball roll",
        description="Write one self-contained HTML file (inline JavaScript and CSS, nothing fetched, no server) "
        "in which gradient descent, momentum, mini-batch SGD and mini-batch SGD with momentum roll side by side "
        "on the lecture's surfaces (the 1-D ball, a saddle, a quadratic valley with adjustable condition number, "
        "two minima), with sliders for the learning rate η, the momentum λ, the batch size B and the seed, the "
        "lecture's arrows (λ·previous movement, −η·gradient, new movement) and a readout of the loss, ‖∇L‖, the "
        "Hessian's eigenvalues and the point's type. The page computes the same trajectories as batchlab toy.",
        epilog="Example: batchlab playground -o playground.html --open",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-o", "--output", type=output_file, default=DEFAULT_OUT, metavar="FILE",
                        help=f"where to write the page (default: {DEFAULT_OUT})")
    parser.add_argument("--open", action="store_true", help="open the page in the default web browser")
    parser.set_defaults(handler=run_playground)


def run_playground(args: argparse.Namespace) -> int:
    from batchlab.playground import write_page  # numpy and scipy only when the command runs

    written = write_page(args.output)
    print(f"playground: {written}")
    if args.open:
        webbrowser.open(written.resolve().as_uri())
    return 0
