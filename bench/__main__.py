"""`python -m bench [name ...]`: run the named benchmarks (all when none is named)."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import bench


def main(argv: list[str]) -> int:
    """Run benchmarks by module name."""
    names = sorted(
        m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_")
    )
    chosen = [a for a in argv if not a.startswith("-")] or names
    for name in chosen:
        if name not in names:
            print(f"unknown benchmark {name!r}; have: {', '.join(names)}", file=sys.stderr)
            return 2
        print(f"== bench {name}", flush=True)
        importlib.import_module(f"bench.{name}").main([a for a in argv if a.startswith("-")])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
