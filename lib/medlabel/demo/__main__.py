"""``python -m medlabel.demo [--out DIR] [--force]``: build the demo studies offline."""

import argparse
from pathlib import Path

from medlabel.demo.build import build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("demo-data"), help="output folder (default: demo-data)")
    parser.add_argument("--force", action="store_true", help="delete and rebuild an existing folder")
    args = parser.parse_args()
    if (args.out / "SOURCES.md").exists() and not args.force:
        print(f"{args.out} already built (use --force to rebuild)")
        return
    counts = build(args.out, force=args.force)
    print(f"built {args.out}: " + ", ".join(f"{k}: {v} studies" for k, v in counts.items()))


if __name__ == "__main__":
    main()
