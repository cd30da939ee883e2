"""Summarise a py-spy raw profile (collapsed stacks): where the samples went.

    python -m bench.profile_summary FILE [--top 25] [--match deliveries]

Prints the functions with the most samples anywhere on the stack ("inclusive"), which
is what points at a cause: a query, a fold, a render.
"""

from __future__ import annotations

import argparse
from collections import Counter


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match", default="", help="only frames containing this text")
    args = parser.parse_args(argv)
    inclusive: Counter[str] = Counter()
    total = 0
    with open(args.file) as raw:
        for line in raw:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not count.isdigit():
                continue
            samples = int(count)
            total += samples
            frames = {frame for frame in stack.split(";") if args.match in frame}
            for frame in frames:
                inclusive[frame] += samples
    print(f"{total} samples")
    for frame, samples in inclusive.most_common(args.top):
        print(f"{100 * samples / total:6.1f}%  {frame}")


if __name__ == "__main__":
    main()
