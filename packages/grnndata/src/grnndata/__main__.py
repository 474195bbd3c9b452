"""``python -m grnndata``: the ``grnndata`` command (see :mod:`grnndata.command`)."""

from .command import main

raise SystemExit(main())
