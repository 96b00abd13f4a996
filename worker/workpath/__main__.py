"""``python -m workpath ...``: the same as the ``workpath`` command."""

from workpath import cli

if __name__ == "__main__":
    cli.main(prog="python -m workpath")
