"""Checks that bench/charts.py drew what BENCHMARKS.md shows: each PNG in DIR
opens as an image of a sensible size and is not one flat colour (an empty
figure). Run by scripts/test after the bench's quick mode.

    .build-venv-bench/bin/python bench/check_charts.py DIR
"""
import os
import sys

import matplotlib.image

EXPECTED = ["targets.png", "throughput.png", "latency.png"]


def main():
    directory = sys.argv[1]
    problems = []
    for name in EXPECTED:
        path = os.path.join(directory, name)
        if not os.path.exists(path):
            problems.append(f"{name}: not drawn")
            continue
        image = matplotlib.image.imread(path)
        height, width = image.shape[:2]
        if width < 600 or height < 300:
            problems.append(f"{name}: {width}×{height} pixels, too small to read")
        # Share of pixels that are not the background: axes, bars, text.
        background = image[0, 0]
        drawn = (abs(image[..., :3] - background[:3]).sum(axis=-1) > 0.1).mean()
        if drawn < 0.02:
            problems.append(f"{name}: {drawn:.1%} of it drawn: empty")
        print(f"{name}: {width}×{height}, {drawn:.1%} drawn")
    for problem in problems:
        print(f"chart problem: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
