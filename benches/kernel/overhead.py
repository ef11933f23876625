"""Kernel round trips against `curate run` per cell; see overhead.sh."""
import statistics
import subprocess
import sys
import time

from jupyter_client.manager import KernelManager

bin_, ws = sys.argv[1:3]
SETUP = "let ds = open();"
CELLS = {
    "trivial cell (`1 + 1`)": ("1 + 1", 200),
    "96-tile grid": ('ds.grid(#{n: 96, cols: 12, size: 96})', 20),
}


def run_script(cells):
    path = f"{ws}/bench.rhai"
    with open(path, "w") as f:
        f.write("\n".join(["// %%\n" + SETUP] + ["// %%\n" + c for c in cells]) + "\n")
    started = time.perf_counter()
    subprocess.run([bin_, "-C", ws, "run", path], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


km = KernelManager(kernel_name="curate")
km.start_kernel(cwd=ws)
kc = km.client()
kc.start_channels()
kc.wait_for_ready(timeout=60)
kc.execute_interactive(SETUP, timeout=60)


def round_trip(code):
    started = time.perf_counter()
    msg_id = kc.execute(code)
    while True:
        reply = kc.get_shell_msg(timeout=120)
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    elapsed = time.perf_counter() - started
    assert reply["content"]["status"] == "ok", reply["content"]
    # Drain the outputs up to idle, so the next request starts clean.
    while True:
        m = kc.get_iopub_msg(timeout=120)
        if m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
            break
    return elapsed


print(f"{'cell':26} {'kernel ms (median)':>19} {'curate run ms/cell':>19} {'kernel - run':>13} {'ratio':>6}")
for name, (code, n) in CELLS.items():
    round_trip(code)  # warm
    kernel = statistics.median(round_trip(code) for _ in range(n))
    one = min(run_script([]) for _ in range(3))
    many = min(run_script([code] * n) for _ in range(3))
    per_cell = (many - one) / n
    print(f"{name:26} {kernel * 1e3:19.2f} {per_cell * 1e3:19.2f} {(kernel - per_cell) * 1e3:13.2f} {kernel / per_cell:6.2f}")
km.shutdown_kernel(now=False)
