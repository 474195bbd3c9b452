"""An external program that never finishes: ``python spawn_and_sleep.py PIDFILE IN.h5ad OUT``.

Starts a child (``sleep``) in the background, writes its own pid, the child's pid and its input
path to PIDFILE, then sleeps; used to check that a time limit leaves no orphan behind.
"""

import os
import subprocess
import sys
import time

child = subprocess.Popen(["sleep", "300"])
with open(sys.argv[1] + ".part", "w") as handle:
    handle.write(f"{os.getpid()} {child.pid} {sys.argv[2]}\n")
os.replace(sys.argv[1] + ".part", sys.argv[1])
time.sleep(300)
