"""Benchmark: read a 100,000-row loan tape (CSV) with ``read_tapes``.

Run ``python benchmarks/tape_load.py [ROWS]``; prints rows per second and seconds (best of 3).
The tape has Chinese headers, amounts with thousands separators, rates written both as
decimals and as percentages, fixed and floating loans, dates and terms, and guarantors.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ipabs.deal.schema import Deal
from ipabs.deal.source import parse_yaml
from ipabs.deal.tape import read_tapes

DEAL = """\
deal: {name: Bench, closing_date: 2025-01-15, first_payment_date: 2025-04-15,
       payment_frequency: quarterly, legal_final_date: 2035-01-15}
indices: {LPR1Y: 3.1%}
obligors: [{name: 担保公司A}, {name: 担保公司B}]
pools:
  - name: smes
    tape:
      path: tape.csv
      columns: {id: 贷款编号, obligor: 借款人, balance: 贷款余额, rate: 利率, index: 基准,
                spread: 利差, maturity_date: 到期日, term_months: 期限, amortisation: 还款方式,
                guarantor: 担保人, guarantee_share: 担保比例, industry: 行业, region: 园区, pd: 违约概率}
      defaults: {payment_frequency: quarterly, day_count: ACT/365}
tranches: [{name: senior, balance: 1000}]
waterfalls: {normal: [{pay_interest: senior}, {pay_principal: senior}]}
"""


def make_tape(path: Path, rows: int, seed: int = 1) -> pd.DataFrame:
    """Write a synthetic loan tape of ``rows`` loans to ``path`` and return it.

    Parameters
    ----------
    path : Path
        CSV file to write (UTF-8 with BOM, as Excel saves "CSV UTF-8").
    rows : int
        Number of loans.
    seed : int
        Seed of the generator.

    Returns
    -------
    pandas.DataFrame
        The tape as written.
    """
    rng = np.random.default_rng(seed)
    obligor_id = rng.integers(0, max(rows // 5, 1), rows)
    balance = rng.integers(100_000, 20_000_000, rows)
    floating = rng.random(rows) < 0.3
    rate = rng.integers(250, 900, rows) / 10_000
    term = rng.random(rows) < 0.5
    days = rng.integers(30, 3000, rows)
    maturity = (np.datetime64("2025-01-15") + days).astype(str)
    guaranteed = rng.random(rows) < 0.4
    sectors = np.array(["生物医药", "软件", "新材料", "高端装备"])
    parks = np.array(["漕河泾", "张江", "临港"])
    tape = pd.DataFrame(
        {
            "贷款编号": [f"L{i:07d}" for i in range(rows)],
            "借款人": [f"企业{k:06d}" for k in obligor_id],
            "贷款余额": [f"{b:,}" if i % 2 else str(b) for i, b in enumerate(balance)],
            "利率": np.where(
                floating, "", np.where(rng.random(rows) < 0.5, [f"{r:.2%}" for r in rate], rate)
            ),
            "基准": np.where(floating, "LPR1Y", ""),
            "利差": np.where(floating, "0.015", ""),
            "到期日": np.where(term, "", maturity),
            "期限": np.where(term, rng.integers(6, 96, rows).astype(str), ""),
            "还款方式": rng.choice(["bullet", "annuity", "equal_principal"], rows),
            "担保人": np.where(guaranteed, rng.choice(["担保公司A", "担保公司B"], rows), ""),
            "担保比例": np.where(guaranteed, "80%", ""),
            "行业": sectors[obligor_id % len(sectors)],
            "园区": parks[obligor_id % len(parks)],
            "违约概率": (0.005 + (obligor_id % 40) / 1000).round(4),
        }
    )
    tape.to_csv(path, index=False, encoding="utf-8-sig")
    return tape


def main(rows: int = 100_000) -> float:
    """Time ``read_tapes`` on a generated tape; return the best of 3 in seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        make_tape(Path(tmp) / "tape.csv", rows)
        data, smap = parse_yaml(DEAL, "bench.yaml")
        spec = Deal.model_validate(data)
        read_tapes(spec, smap, tmp)  # warm up imports and caches
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            tapes = read_tapes(spec, smap, tmp)
            best = min(best, time.perf_counter() - start)
        assert len(tapes["smes"]) == rows
    print(f"{rows:,} rows in {best:.3f} s ({rows / best:,.0f} rows/s, best of 3)")
    return best


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
