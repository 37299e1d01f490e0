"""Benchmark: mlops.monitoring.drift.compute_drift vs Evidently's DataDriftPreset.

    python bench/bench_drift.py [--rows 1000000] [--cols 20] [--no-evidently]

Generates a reference and a current frame (rows x cols numeric; the current
frame has shifts in some columns), then

* times ``evidently_drift`` (the real preset), ``compute_drift`` and
  ``render_report_html`` (sampled HTML report) in this process,
* checks the per-column verdicts and methods are identical (exit 1 if not),
* measures the peak memory of ``compute_drift`` in a fresh child process
  (the child generates the same data, then runs ``compute_drift``; its
  ``ru_maxrss`` is reported, together with the RSS before the call).

Exit code 0 when the verdicts match; the speed/memory targets are printed
(``>= 10x`` faster, peak < 2 GB) and flagged but do not change the exit code
unless ``--strict`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mlops.monitoring.drift import compute_drift, evidently_drift, render_report_html  # noqa: E402

PEAK_LIMIT_BYTES = 2 * 1024**3
SPEEDUP_TARGET = 10.0


def make_frames(rows: int, cols: int, seed: int = 42) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference and current frames; a third of the columns drift in current."""
    rng = np.random.default_rng(seed)
    names = [f"f{i:02d}" for i in range(cols)]

    def column(i: int, shifted: bool) -> np.ndarray:
        kind = i % 5
        if kind == 0:
            x = rng.normal(0.0, 1.0, rows)
            if shifted:
                x += 0.3
        elif kind == 1:
            x = rng.lognormal(0.0, 0.5, rows)
            if shifted:
                x *= 1.25
        elif kind == 2:
            x = rng.uniform(-1.0, 1.0, rows)
            if shifted:
                x = x * 0.8 + 0.05
        elif kind == 3:  # rounded values: lots of ties
            x = np.round(rng.normal(10.0, 3.0, rows), 1)
            if shifted:
                x += 0.4
        else:  # small shift, some NaN
            x = rng.normal(5.0, 2.0, rows)
            if shifted:
                x += 0.1  # 0.05 std: below the 0.1 Wasserstein threshold
            x[rng.random(rows) < 0.01] = np.nan
        return x

    def frame(shift: bool) -> pd.DataFrame:
        data = np.empty((cols, rows), dtype=np.float64)
        for i in range(cols):
            data[i] = column(i, shift and i % 3 == 0)
        # (cols, rows) C-order transposed -> each column contiguous, no copy in pandas
        return pd.DataFrame(data.T, columns=names, copy=False)

    return frame(False), frame(True)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child_compute(rows: int, cols: int) -> None:
    ref, cur = make_frames(rows, cols)
    before = _rss_bytes()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t = time.perf_counter()
    result = compute_drift(ref, cur)
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(
        json.dumps(
            {
                "rss_before": before,
                "peak_before": peak_before,
                "peak": peak,
                "seconds": seconds,
                "drifted": result.drifted_columns,
            }
        )
    )


def measure_memory(rows: int, cols: int) -> dict:
    proc = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            "--rows",
            str(rows),
            "--cols",
            str(cols),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    info["children_maxrss"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--cols", type=int, default=20)
    p.add_argument("--max-rows", type=int, default=20_000, help="sample size for the HTML report")
    p.add_argument("--no-evidently", action="store_true", help="skip the (slow) Evidently run")
    p.add_argument("--strict", action="store_true", help="also fail when a target is missed")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")

    if args.child:
        child_compute(args.rows, args.cols)
        return 0

    mib = 1024**2
    print(f"rows={args.rows:,} cols={args.cols}")
    mem = measure_memory(args.rows, args.cols)
    print(
        f"compute_drift peak RSS (child process): {mem['peak'] / mib:,.0f} MiB "
        f"(data alone {mem['rss_before'] / mib:,.0f} MiB, "
        f"increase during compute_drift {max(mem['peak'] - mem['peak_before'], 0) / mib:,.0f} MiB "
        f"above the earlier peak; RUSAGE_CHILDREN {mem['children_maxrss'] / mib:,.0f} MiB)"
    )

    # Import Evidently up front: a cold process pays this once on either path (the
    # sampled HTML report needs Evidently too), so it is reported separately.
    t = time.perf_counter()
    import evidently.presets  # noqa: F401

    print(
        f"import evidently:   {time.perf_counter() - t:8.2f} s   (one-off per process, not in the timings below)"
    )

    t = time.perf_counter()
    ref, cur = make_frames(args.rows, args.cols)
    print(f"generated data in {time.perf_counter() - t:.1f}s")

    t = time.perf_counter()
    ours = compute_drift(ref, cur)
    t_compute = time.perf_counter() - t
    print(f"compute_drift:      {t_compute:8.2f} s   drifted={ours.drifted_columns}")

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        out = render_report_html(
            ref, cur, None, (), Path(tmp) / "drift.html", max_rows=args.max_rows, verdict=ours
        )
        t_render = time.perf_counter() - t
        size = out.stat().st_size
    print(
        f"render_report_html: {t_render:8.2f} s   (sample {args.max_rows:,} rows/frame, {size / mib:.1f} MiB HTML)"
    )
    t_total = t_compute + t_render
    print(f"compute + render:   {t_total:8.2f} s")

    ok = True
    if not args.no_evidently:
        t = time.perf_counter()
        ref_result = evidently_drift(ref, cur)
        t_ev = time.perf_counter() - t
        print(f"evidently_drift:    {t_ev:8.2f} s   drifted={ref_result.drifted_columns}")
        mismatches = []
        max_rel = 0.0
        for name, theirs in ref_result.columns.items():
            mine = ours.columns[name]
            rel = abs(mine.score - theirs.score) / max(abs(theirs.score), 1e-300)
            max_rel = max(max_rel, rel)
            if mine.drifted != theirs.drifted or mine.method != theirs.method:
                mismatches.append((name, mine, theirs))
        if ours.drift_detected != ref_result.drift_detected or set(ours.columns) != set(
            ref_result.columns
        ):
            mismatches.append(("<dataset>", ours.drift_detected, ref_result.drift_detected))
        print(
            f"verdicts identical: {not mismatches}   max relative score difference: {max_rel:.2e}"
        )
        for m in mismatches:
            print("  MISMATCH", m)
        ok = not mismatches
        speed_compute = t_ev / t_compute
        speed_total = t_ev / t_total
        print(f"speed-up compute:          {speed_compute:6.1f}x  (target >= {SPEEDUP_TARGET:g}x)")
        print(f"speed-up compute + render: {speed_total:6.1f}x  (target >= {SPEEDUP_TARGET:g}x)")
        targets = speed_compute >= SPEEDUP_TARGET and speed_total >= SPEEDUP_TARGET
    else:
        targets = True
    mem_ok = mem["peak"] < PEAK_LIMIT_BYTES
    print(f"peak memory < 2 GiB: {mem_ok}")
    if not ok:
        return 1
    if args.strict and not (targets and mem_ok):
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
