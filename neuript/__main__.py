"""``python -m neuript`` (also ``torchrun ... -m neuript``) runs the CLI."""

from neuript.cli import main

if __name__ == "__main__":
    main()
