"""A shared study's tables made by an earlier tritune (tritune_claims without its `beat` column)
are brought up to date when a worker joins, so a study can be continued across versions."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from analyzer.store.study_tables import CONFIRM_CLAIM, SharedTables


def test_an_old_claims_table_gets_its_beat_column(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    old = sa.MetaData()
    sa.Table(
        "tritune_claims",
        old,
        sa.Column("study", sa.String(255), primary_key=True),
        sa.Column("config_id", sa.String(255), primary_key=True),
        sa.Column("trial", sa.Integer, nullable=False),
        sa.Column("worker", sa.String(255), nullable=False),
    )
    engine = sa.create_engine(url)
    old.create_all(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("insert into tritune_claims values ('s', '__confirm__', -1, 'old:1')"))
    tables = SharedTables(url, "s", "new:2")
    assert "beat" in {c["name"] for c in sa.inspect(engine).get_columns("tritune_claims")}
    assert tables.holding(CONFIRM_CLAIM) == (-1, "old:1", None)  # an old claim: no beat yet
    assert tables.claim("i1_b8_d0", 3) and tables.holding("i1_b8_d0")[2] is not None
