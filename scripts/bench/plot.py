#!/usr/bin/env python3
"""Draws throughput and p99 latency against connections from bench.sh --sweep output."""
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

rows = [line.split() for line in open(sys.argv[1]).read().splitlines()[1:] if line.strip()]
c = [int(r[0]) for r in rows]
health = [float(r[1]) for r in rows]
ingest = [float(r[2]) for r in rows]
p99 = [float(r[4]) for r in rows]

fig, ax1 = plt.subplots(figsize=(8, 4.5))
ax1.plot(c, health, "o-", label="GET /healthz (ceiling)")
ax1.plot(c, ingest, "s-", label="POST webhook (full ingest)")
ax1.set_xscale("log", base=2)
ax1.set_xlabel("connections")
ax1.set_ylabel("requests / s")
ax1.set_xticks(c)
ax1.set_xticklabels([str(x) for x in c])
ax2 = ax1.twinx()
ax2.plot(c, p99, "^--", color="tab:red", label="ingest p99 (ms)")
ax2.set_ylabel("ingest p99 latency, ms")
lines = ax1.get_legend_handles_labels()
lines2 = ax2.get_legend_handles_labels()
ax1.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper left", fontsize=8)
ax1.set_title(f"meterhook ingest, {sys.argv[3]}, 2 cores, wrk on the same machine", fontsize=9)
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
