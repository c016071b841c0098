"""Run the transport benchmark from a checkout: ``python bench/run.py [--quick] [...]``, the same as ``netops bench``.

The full run writes bench/results/report.md, chart.png and results.json.
"""

from gateway.bench import main

if __name__ == "__main__":
    raise SystemExit(main())
