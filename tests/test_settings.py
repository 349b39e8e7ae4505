"""``from_table``: a TOML table into a settings dataclass, every mistake named with where."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from anomae.errors import PipelineError
from anomae.settings import from_table


@dataclass(frozen=True)
class Example:
    length: int = 8
    rate: float = 0.5
    limit: float | None = None
    on: bool = False
    name: str = "x"
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.length < 1:
            raise ValueError(f"length must be >= 1, got {self.length}")


@pytest.mark.parametrize(
    ("table", "want"),
    [
        ({}, Example()),
        ({"rate": 1, "limit": 2}, Example(rate=1.0, limit=2.0)),  # TOML ints where floats go
        ({"names": "temp"}, Example(names=("temp",))),  # one name for a list of one
        ({"names": ["a", "b"], "on": True}, Example(names=("a", "b"), on=True)),
    ],
)
def test_tables_become_settings(table: dict, want: Example) -> None:
    got = from_table(Example, table, "p.toml [example]")
    assert got == want
    assert type(got.rate) is float and (got.limit is None or type(got.limit) is float)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"lenght": 3}, "unknown key(s) ['lenght']; known keys: ['length', 'limit', 'name'"),
        ({"length": "8"}, "key 'length' must be int, got str '8'"),
        ({"length": True}, "key 'length' must be int, got True"),
        ({"length": 2.5}, "key 'length' must be int, got float 2.5"),
        ({"rate": "high"}, "key 'rate' must be float, got str 'high'"),
        ({"on": 1}, "key 'on' must be bool, got int 1"),
        ({"name": 3}, "key 'name' must be str, got int 3"),
        ({"names": 3}, "key 'names' must be a list, got 3"),
        ({"length": 0}, "length must be >= 1, got 0"),  # the dataclass's own check
    ],
)
def test_mistakes_name_where(table: dict, message: str) -> None:
    with pytest.raises(PipelineError) as err:
        from_table(Example, table, "p.toml [example]")
    assert str(err.value).startswith("p.toml [example]: ")
    assert message in str(err.value)
