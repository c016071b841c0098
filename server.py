"""Start NetOps Gateway on every transport: ``python server.py --help`` lists the flags."""

from gateway.server import main

if __name__ == "__main__":
    raise SystemExit(main())
