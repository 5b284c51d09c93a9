"""Run benchmarks and write their tables to BENCHMARKS.md.

    python -m benchmarks                      # data + model (what ./dev bench runs)
    python -m benchmarks data|model|mental_arithmetic [ARGS...]   # one of them, with its own arguments

``mental_arithmetic`` trains several models and takes long on a CPU; it is never run by default.
"""

from __future__ import annotations

import importlib
import sys

SUITES = {"data": "benchmarks.data_bench", "model": "benchmarks.model_bench",
          "mental_arithmetic": "benchmarks.mental_arithmetic", "gpu": "benchmarks.gpu_bench"}
DEFAULT = ("data", "model")


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    if argv and argv[0] in SUITES:
        return importlib.import_module(SUITES[argv[0]]).main(argv[1:]) or 0
    if argv:
        print(f"unknown benchmark {argv[0]!r}; choose from {sorted(SUITES)}", file=sys.stderr)
        return 2
    rc = 0
    for name in DEFAULT:
        print(f"== {name} ==", flush=True)
        rc |= importlib.import_module(SUITES[name]).main([]) or 0
    return rc


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
