"""``python -m symmft``: the same command line as the ``symmft`` script (:mod:`symmft.cli`)."""

from .cli import main

raise SystemExit(main())
