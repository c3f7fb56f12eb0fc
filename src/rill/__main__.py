"""The ``rill`` command's entry point; ``python -m rill`` behaves exactly like ``rill``."""


def main() -> None:
    """Run the command. A Ctrl-C that lands while the command is still loading (its first tens
    of milliseconds) ends it like one during the run: exit 130, no traceback."""
    try:
        from rill.cli import main as run

        run()
    except KeyboardInterrupt:
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
