"""The CLI's option checks (no server): Click refuses a bad value with exit 2 before anything
starts, naming the option and the value; and the strategy registry feeds --strategy and the spec."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from analyzer.cli.main import main
from analyzer.cli.params import LevelsType
from analyzer.spec.spec import STRATEGIES


def test_level_lists() -> None:
    assert LevelsType(integer=True).convert("1, 2,4,", None, None) == [1, 2, 4]
    assert LevelsType(integer=False).convert("12.5,100", None, None) == [12.5, 100.0]
    with pytest.raises(click.BadParameter, match="'1,x': 'x' is not a number"):
        LevelsType(integer=True).convert("1,x", None, None)
    with pytest.raises(click.BadParameter, match=r"'1\.5': levels must be whole numbers > 0"):
        LevelsType(integer=True).convert("1.5", None, None)
    with pytest.raises(click.BadParameter, match="'0,5': levels must be numbers > 0"):
        LevelsType(integer=False).convert("0,5", None, None)
    with pytest.raises(click.BadParameter, match="needs at least one level"):
        LevelsType(integer=False).convert(" , ", None, None)


@pytest.mark.parametrize(
    "args, named",
    [
        (["profile", "-m", "x", "--concurrency", "1,two"], "'--concurrency': '1,two': 'two' is not a number"),
        (["profile", "-m", "x", "--rate", "-5"], "'--rate': '-5': levels must be numbers > 0"),
        (["profile", "-m", "x", "--max-windows", "2"], "'--max-windows': 2 is not in the range x>=3"),
        (["profile", "-m", "x", "--window-s", "0"], "'--window-s': 0.0 is not in the range x>0"),
        (["profile", "-m", "x", "--warmup-s", "-1"], "'--warmup-s': -1.0 is not in the range x>=0"),
        (["profile", "-m", "x", "--stability", "0"], "'--stability': 0.0 is not in the range x>0"),
        (
            ["profile", "-m", "x", "--request-timeout-s", "0"],
            "'--request-timeout-s': 0.0 is not in the range x>0",
        ),
        (["profile", "-m", "x", "--budget-ms", "-2"], "'--budget-ms': -2.0 is not in the range x>0"),
        (["sweep", "s.yaml", "--budget-ms", "0"], "'--budget-ms': 0.0 is not in the range x>0"),
        (["sweep", "s.yaml", "--max-trials", "0"], "'--max-trials': 0 is not in the range x>=1"),
        (
            ["sweep", "s.yaml", "--strategy", "random"],
            "'--strategy': 'random' is not one of 'grid', 'optuna'",
        ),
    ],
)
def test_bad_values_exit_2_naming_the_option_and_the_value(args: list[str], named: str) -> None:
    # --url to a closed port, so no server is needed. An accepted value would exit 2 there too
    # (the server is unreachable), so the message, naming the option and the value, is the check.
    result = CliRunner().invoke(main, [*args, "--url", "127.0.0.1:1"] if args[0] == "profile" else args)
    assert result.exit_code == 2, result.output
    assert named in result.stderr


def test_the_registry_names_every_strategy_the_spec_and_the_cli_accept() -> None:
    (option,) = [p for p in main.commands["sweep"].params if p.name == "strategy"]
    assert isinstance(option.type, click.Choice)
    assert tuple(option.type.choices) == STRATEGIES
