import sys

from onhand.cli import main

sys.exit(main())
