import sys

from cocattn.cli import main

sys.exit(main())
