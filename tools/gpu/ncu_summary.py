"""Per-kernel GPU time of decode steps from Nsight Compute, without event or launch-gap overhead.

usage: python3 tools/gpu/ncu_summary.py NCU.csv
NCU.csv from: ncu --launch-skip S --launch-count C --metrics gpu__time_duration.sum --csv --print-units base BENCH profile ...
Steps are counted by argmax_rows launches (one per step); a window that cuts a step counts its kernels in the totals.
"""
import collections
import csv
import sys

rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
head = rows[0]
name, metric, value = head.index("Kernel Name"), head.index("Metric Name"), head.index("Metric Value")
time = collections.defaultdict(float)
calls = collections.Counter()
for r in rows[1:]:
    if r[metric] == "gpu__time_duration.sum":
        kernel = r[name].split("(")[0]
        time[kernel] += float(r[value].replace(",", ""))
        calls[kernel] += 1
steps = calls["argmax_rows"] or 1
total = sum(time.values())
print(f"{sum(calls.values())} launches, {steps} steps: kernel time {total / steps / 1e6:.3f} ms a step, "
      f"{sum(calls.values()) / steps:.0f} launches a step")
print("| kernel | µs / step | launches / step | µs / launch |")
for kernel, t in sorted(time.items(), key=lambda kv: -kv[1]):
    print(f"| {kernel} | {t / steps / 1e3:.1f} | {calls[kernel] / steps:.1f} | {t / calls[kernel] / 1e3:.2f} |")
