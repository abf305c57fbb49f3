"""Process-tree memory: the run's per-stage peak is summed over its whole tree (torchrun
children, Ray workers); PSS splits pages the processes share, the RSS sum counts them in each."""

from __future__ import annotations

import subprocess
import sys

import psutil

from sinternal_verl.cpu.measure import tree_pss_bytes, tree_rss_bytes


def test_tree_memory_counts_children_and_pss_never_exceeds_the_rss_sum():
    code = "import sys, json; sys.stdout.write('up\\n'); sys.stdout.flush(); sys.stdin.read()"
    kids = [
        subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    try:
        for k in kids:
            assert k.stdout.readline().strip() == "up"  # both interpreters are running
        kid_pss = sum(psutil.Process(k.pid).memory_full_info().pss for k in kids)
        pss, rss = tree_pss_bytes(), tree_rss_bytes()
        assert kid_pss > 0 and pss > kid_pss  # the children are in the sum, beside this process
        assert 0 < pss <= rss  # shared interpreter pages: split in PSS, counted twice in RSS
    finally:
        for k in kids:
            k.stdin.close()
            k.wait(30)
