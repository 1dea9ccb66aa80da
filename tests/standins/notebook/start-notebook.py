#!/usr/bin/env python
# Like docker-stacks' start-notebook.py: under JupyterHub (JUPYTERHUB_API_TOKEN
# set) hand over to start-singleuser.py, else run `jupyter lab` (or
# DOCKER_STACKS_JUPYTER_CMD) with NOTEBOOK_ARGS and the arguments given.
import os
import shlex
import sys

if "JUPYTERHUB_API_TOKEN" in os.environ:
    command = ["start-singleuser.py", *sys.argv[1:]]
    os.execvp(command[0], command)

command = ["jupyter", os.environ.get("DOCKER_STACKS_JUPYTER_CMD", "lab")]
command += shlex.split(os.environ.get("NOTEBOOK_ARGS", ""))
command += sys.argv[1:]
print("Executing: " + " ".join(command), flush=True)
os.execvp(command[0], command)
