"""``python -m gateway`` runs the gateway, like ``python server.py``."""

from gateway.server import main

raise SystemExit(main())
