import sys

from depthsense_jax.cli import main

sys.exit(main())
