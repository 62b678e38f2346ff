"""Stand-in for rviz2 (test environments only): records its command line and the config it was
given (-d FILE) to $STANDIN_RECORD.rviz, then waits to be stopped."""

import os
import shutil
import sys
import time

argv = sys.argv[1:]
record = os.environ["STANDIN_RECORD"] + ".rviz"
with open(record + ".args", "w") as f:
    f.write("\n".join(argv))
if "-d" in argv:
    shutil.copyfile(argv[argv.index("-d") + 1], record)
try:
    while True:
        time.sleep(0.2)
except KeyboardInterrupt:
    pass
