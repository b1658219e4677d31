"""`python -m sitedaemon ...`: see sitedaemon/README.md."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
