"""``python -m livecall``: the same as the ``livecall`` command."""

from .cli import main

if __name__ == "__main__":
    main()
