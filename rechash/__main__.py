import sys

from rechash.cli import main

sys.exit(main())
