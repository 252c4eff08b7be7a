"""``python -m lbw_utils.runner.fanout ...``: see :mod:`lbw_utils.runner.fanout.cli`."""

from lbw_utils.runner.fanout.cli import main

raise SystemExit(main())
