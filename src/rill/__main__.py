"""`python -m rill` behaves exactly like `rill`."""

from rill import main

if __name__ == "__main__":
    main()
