"""A real Jupyter client against the curate kernel, for tests/cli/jupyter.rs.

usage: notebook_client.py NOTEBOOK_IN NOTEBOOK_OUT WORKSPACE

1. nbclient executes NOTEBOOK_IN in WORKSPACE (the kernel's folder), as JupyterLab or
   `jupyter execute` would: a cell's `timeout` metadata (seconds) makes nbclient interrupt the
   kernel when it runs longer, and errors do not stop the run. The executed notebook goes to
   NOTEBOOK_OUT.
2. jupyter_client then starts a second kernel and asks it for completions, inspection and
   completeness, and shuts it down. Their replies are printed as one JSON document.
"""
import json
import sys
import time

import nbformat
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

nb_in, nb_out, workspace = sys.argv[1:4]

nb = nbformat.read(nb_in, as_version=4)
client = NotebookClient(
    nb,
    kernel_name="curate",
    resources={"metadata": {"path": workspace}},
    timeout_func=lambda cell: cell.metadata.get("timeout", 600),
    interrupt_on_timeout=True,
    allow_errors=True,
    startup_timeout=120,
)
client.execute()
nbformat.write(nb, nb_out)

km = KernelManager(kernel_name="curate")
km.start_kernel(cwd=workspace)
kc = km.client()
kc.start_channels()
kc.wait_for_ready(timeout=120)


def shell_reply(msg_id):
    while True:
        msg = kc.get_shell_msg(timeout=60)
        if msg["parent_header"].get("msg_id") == msg_id:
            return msg["content"]


out = {}
kc.execute_interactive("let ds = open();", timeout=60)
out["complete_primitive"] = shell_reply(kc.complete("ds.group_c", 10))
out["complete_variable"] = shell_reply(kc.complete("let n = d", 9))
code = 'ds.filter("lab'
out["complete_column"] = shell_reply(kc.complete(code, len(code)))
out["inspect_primitive"] = shell_reply(kc.inspect("ds.group_count(\"class\")", 5))
out["inspect_variable"] = shell_reply(kc.inspect("ds", 1))
out["is_complete"] = {
    c: shell_reply(kc.is_complete(c))["status"]
    for c in ["for x in [1, 2] {", "let a = 1;", "let a = 1 +* 2;", "%workspace .\nds.len()"]
}
# "Run all": requests queued behind a failing cell are aborted; a later one runs.
failing = kc.execute("let s = 0;\nfor i in 0..100000 { s += i; }\ns.no_such_method()")
queued = kc.execute('print("never")')
out["run_all"] = [shell_reply(failing)["status"], shell_reply(queued)["status"]]
out["after_run_all"] = shell_reply(kc.execute("1 + 1"))["status"]
# A message signed with the wrong key is dropped, and the kernel answers the next one.
from jupyter_client.session import Session

Session(key=b"not-the-key").send(kc.shell_channel.socket, "kernel_info_request", {})
out["after_bad_message"] = shell_reply(kc.kernel_info())["status"]

# The heartbeat answers (jupyter_client pings every few seconds; give it one round).
deadline = time.monotonic() + 10
while not kc.hb_channel.is_beating() and time.monotonic() < deadline:
    time.sleep(0.2)
time.sleep(3.5)
out["heartbeat"] = kc.hb_channel.is_beating()
started = time.monotonic()
km.shutdown_kernel(now=False)
out["shutdown_seconds"] = time.monotonic() - started
out["alive_after_shutdown"] = km.is_alive()
print(json.dumps(out))
