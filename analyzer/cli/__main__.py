"""`python -m analyzer.cli.main`: the tritune command."""

from analyzer.cli.main.main import main

main()
