"""``python -m raftsim``: the seeded Raft cluster simulator (see raftsim.simulate)."""

import sys

from raftsim.simulate import main

sys.exit(main())
