import sys

from reference_runtime.engine.cli import main

sys.exit(main())
