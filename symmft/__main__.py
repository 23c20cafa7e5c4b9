"""``python -m symmft``: the same command line as the ``symmft`` script (:mod:`symmft.cli.main`)."""

from symmft.cli.main import main

raise SystemExit(main())
