"""Triplet extraction throughput: reports/s on one core over the 3,955 Indiana University reports.

Target (issue 5): at least 2,000 reports/s on one core. The benchmark runs in this one process
(pure Python: one core), times ``report_to_matrix`` over all IU reports (MIMIC-style text built from
the XML, see ``medslip.triplets.iu``), and stores reports/s in ``extra_info``.
Run: ``.venv/bin/python -m pytest benchmarks/test_bench_triplets.py -m "" --benchmark-only -s``.
"""

from __future__ import annotations

import statistics

import pytest

from medslip.triplets import default_rules, report_to_matrix
from medslip.triplets.iu import default_iu_path, iu_reports

TARGET_REPORTS_PER_S = 2000.0


@pytest.fixture(scope="module")
def texts() -> list[str]:
    if default_iu_path() is None:
        pytest.skip("torchxrayvision (NLMCXR_reports.tgz) is not installed")
    default_rules()  # compile the rule table outside the timing
    return [text for _, text in iu_reports()]


def test_bench_report_to_matrix_iu(benchmark, texts: list[str]) -> None:
    def run() -> None:
        for text in texts:
            report_to_matrix(text)

    benchmark.pedantic(run, rounds=5, warmup_rounds=1)
    seconds = statistics.median(benchmark.stats.stats.data)
    rate = len(texts) / seconds
    benchmark.extra_info.update(
        {"reports": len(texts), "reports_per_s": rate, "target_reports_per_s": TARGET_REPORTS_PER_S})
    print(f"\ntriplets: {len(texts)} IU reports in {seconds:.3f} s -> {rate:,.0f} reports/s "
          f"(target {TARGET_REPORTS_PER_S:,.0f})")
    assert rate >= TARGET_REPORTS_PER_S
