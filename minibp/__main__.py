"""``python -m minibp``: the command line (:mod:`minibp.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":  # worker processes of the ImageNet loader import this module too
    sys.exit(main())
