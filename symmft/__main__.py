"""``python -m symmft``: the same command line as the ``symmft`` script (:mod:`symmft.cli`)."""

from symmft.cli import main

raise SystemExit(main())
