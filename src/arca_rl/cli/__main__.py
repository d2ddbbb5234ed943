"""`python -m arca_rl.cli ...` (and `accelerate launch -m arca_rl.cli ...`): the `arca` command."""

import sys

from . import main

sys.exit(main())
