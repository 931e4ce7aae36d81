"""`python -m analyzer.cli`: the tritune command."""

from analyzer.cli.main import main

main()
