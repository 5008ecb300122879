"""Run every benchmark module ``bench/bench_*.py`` (or those named on the command line).

Each module has ``main(quick: bool) -> None`` that prints its figures, each next to a baseline
measured in the same run. ``--quick`` shrinks the workloads (used by the test suite to keep the
benchmarks working, never to judge their speed).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("names", nargs="*", help="benchmark modules, e.g. database blip")
    parser.add_argument("--quick", action="store_true", help="small workloads (smoke test)")
    args = parser.parse_args(argv)
    here = Path(__file__).parent
    available = sorted(
        m.name.removeprefix("bench_")
        for m in pkgutil.iter_modules([str(here)])
        if m.name.startswith("bench_")
    )
    wanted = args.names or available
    unknown = sorted(set(wanted) - set(available))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; have {', '.join(available)}")
    for name in wanted:
        module = importlib.import_module(f"bench.bench_{name}")
        print(f"\n=== {name} ===", flush=True)
        started = time.perf_counter()
        module.main(quick=args.quick)
        print(f"({name}: {time.perf_counter() - started:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
