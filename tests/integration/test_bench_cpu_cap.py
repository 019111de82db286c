"""``python -m ops.bench --cpu-cap ROLE=CORES``: a replica held to a share of the CPU by a
cgroup of its own, and the cgroup gone after the process."""

import subprocess
import sys
import time

from ops.bench.harness import CpuCap, process_cpu_seconds


def test_a_busy_process_is_held_to_its_share_of_a_core():
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    cap = None
    try:
        cap = CpuCap(spin.pid, 0.25)
        assert str(spin.pid) in (cap.path / "cgroup.procs").read_text().split()
        before, started = process_cpu_seconds(spin.pid), time.perf_counter()
        time.sleep(1.5)
        share = (process_cpu_seconds(spin.pid) - before) / (time.perf_counter() - started)
        assert 0.15 < share < 0.35, share  # unheld it would take a whole core (~1.0)
    finally:
        spin.kill()
        spin.wait()
        if cap is not None:
            cap.remove()
    assert not cap.path.exists()
