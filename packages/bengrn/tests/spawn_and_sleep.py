"""An external program that never finishes: ``python spawn_and_sleep.py PIDFILE IN.h5ad OUT``.

Starts two children (``sleep``): one in its own process group, one in a new session (``setsid``,
as a daemon would), writes its own pid, the children's pids and its input path to PIDFILE, then
sleeps; used to check that a time limit or a killed benchmark leaves no process behind.
"""

import os
import subprocess
import sys
import time

child = subprocess.Popen(["sleep", "300"])
daemon = subprocess.Popen(["sleep", "300"], start_new_session=True)
with open(sys.argv[1] + ".part", "w") as handle:
    handle.write(f"{os.getpid()} {child.pid} {daemon.pid} {sys.argv[2]}\n")
os.replace(sys.argv[1] + ".part", sys.argv[1])
time.sleep(300)
