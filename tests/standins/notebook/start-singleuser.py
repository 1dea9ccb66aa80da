#!/usr/bin/env python
# Like docker-stacks' start-singleuser.py: run jupyterhub-singleuser on all
# interfaces (unless NOTEBOOK_ARGS sets --ip) with NOTEBOOK_ARGS and the
# arguments given; without JUPYTERHUB_API_TOKEN fall back to `jupyter lab`.
import os
import shlex
import sys

notebook_args = shlex.split(os.environ.get("NOTEBOOK_ARGS", ""))
if "JUPYTERHUB_API_TOKEN" in os.environ:
    command = ["jupyterhub-singleuser"]
    if not any(arg.startswith("--ip") for arg in notebook_args + sys.argv[1:]):
        command.append("--ip=0.0.0.0")
else:
    command = ["jupyter", os.environ.get("DOCKER_STACKS_JUPYTER_CMD", "lab")]
command += notebook_args + sys.argv[1:]
print("Executing: " + " ".join(command), flush=True)
os.execvp(command[0], command)
