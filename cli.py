"""Thin shim: ``python cli.py ...`` runs the same CLI as the ``msrkit`` console script."""

from msrkit.cli import main

if __name__ == "__main__":
    main()
