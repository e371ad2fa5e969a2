"""`python -m lmforge` (and `torchrun -m lmforge`) entry point."""

from lmforge.cli.main import main

if __name__ == "__main__":
    main()
