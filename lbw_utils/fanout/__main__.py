"""``python -m lbw_utils.fanout ...``: see :mod:`lbw_utils.fanout.cli`."""

from lbw_utils.fanout.cli import main

raise SystemExit(main())
