"""Run the transport benchmark from a checkout: ``python bench/run.py [--quick] [...]``, the same as ``netops bench``.

The committed run, ``python bench/run.py --out bench/results``, writes report.md, chart.png and results.json there.
"""

from gateway.bench import main

if __name__ == "__main__":
    raise SystemExit(main())
