# The single-user image: a docker-stacks data-science notebook plus the "batteries"
# (real-time collaboration, SQL cells, AI assistant, DataFrame previews, plotly) and the
# jupyterhub the hub needs, all installed here at build time, never when a container starts.
# Build from the repository root:  ./build.sh   (or: docker compose --profile build build singleuser)
# BASE_IMAGE: an exact, dated docker-stacks build (Python 3.13, JupyterLab 4.x, which the
# collaboration packages need); a new date is an upgrade you choose (see the docs).
# Any image that honours docker-stacks' contract works (user jovyan, uid 1000, a Python
# environment in /opt/conda that jovyan owns, start-notebook.py), e.g. the lighter
# quay.io/jupyter/minimal-notebook; pip then brings what the batteries need.
ARG BASE_IMAGE=quay.io/jupyter/datascience-notebook:2026-08-24
FROM ${BASE_IMAGE}

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Installed as the base image's user (jovyan owns /opt/conda), without a pip cache, with
# bytecode compiled. The base's data stack is held at its versions (pip constraints made
# from the base's own environment): the batteries must fit the stack the base ships, not
# replace conda's numpy/pandas/... with wheels. `pip check` fails the build on a broken set.
# The pins stay in the image, in /opt/conda/share/personal-hub/requirements.txt.
# rfc3987-syntax goes: jsonschema imports it (when present) at every server start to
# check the "iri" string format, which no Jupyter schema uses, and building its ~35
# parsers takes 1-2 s of each start on two cores (jsonschema issue 1428);
# without it, jsonschema skips that one format.
# Everything else the batteries bring in is pinned too (singleuser-constraints.txt), so
# pip resolves at once instead of searching the index's newest releases.
COPY --chown=${NB_UID}:${NB_GID} docker/singleuser-requirements.txt ${CONDA_DIR}/share/personal-hub/requirements.txt
COPY --chown=${NB_UID}:${NB_GID} docker/singleuser-constraints.txt ${CONDA_DIR}/share/personal-hub/constraints.txt
RUN pip list --format=freeze \
      | { grep -i -E '^(numpy|pandas|scipy|scikit[-_]learn|matplotlib|seaborn|statsmodels|sqlalchemy|ipywidgets|numba|pyarrow)==' || true; } \
      > /tmp/base-stack.txt \
 && pip install --no-cache-dir --disable-pip-version-check \
      --constraint /tmp/base-stack.txt \
      --constraint "${CONDA_DIR}/share/personal-hub/constraints.txt" \
      --requirement "${CONDA_DIR}/share/personal-hub/requirements.txt" \
 && pip uninstall --yes --disable-pip-version-check rfc3987-syntax \
 && pip check \
 && rm -f /tmp/base-stack.txt

# The installed itables' DataTables bundle, for the server to serve (see below).
RUN itables_html="$(python -c 'import itables, os; print(os.path.dirname(itables.__file__))')/html" \
 && static="${CONDA_DIR}/share/personal-hub/static/personal-hub/itables/$(python -c 'import itables; print(itables.__version__)')" \
 && mkdir -p "${static}" \
 && cp "${itables_html}/dt_bundle.js" "${itables_html}/dt_bundle.css" "${static}/"

# Offline and private by default: LiteLLM (Jupyternaut) reads its model cost map from the
# installed package instead of the internet; FastMCP (under jupyter-ai's MCP server
# extension) does not check PyPI for updates (offline, that check stalls the MCP server
# past its 10 s start-up deadline and the extension fails); jupysql
# (ploomber-core) sends no telemetry and does not check PyPI for new versions either.
# API keys (OPENAI_API_KEY, ANTHROPIC_API_KEY) come from the container's environment when
# the hub sets them; none is needed to start.
ENV LITELLM_LOCAL_MODEL_COST_MAP=True \
    FASTMCP_CHECK_FOR_UPDATES=off \
    PLOOMBER_STATS_ENABLED=false \
    PLOOMBER_VERSION_CHECK_DISABLED=true

# System-wide settings, all outside the persistent home volume (/home/jovyan), read-only
# for users (a user's ~/.jupyter config still overrides them):
# - /usr/local/etc/jupyter/jupyter_server_config.json (a system config dir that docker-stacks
#   leaves empty; its own /etc/jupyter/jupyter_server_config.py stays as it is):
#   * the hub's answers about a login cached for 30 s, not 5 minutes, and the
#     personal_hub_guard server extension, which closes the live collaboration connections
#     of a login that lost access: a revoked guest's open tab stops within 40 s;
#   * collaboration state (the Y document store and the file-ID database) in /tmp, never
#     in the home volume, so it cannot go stale against the files or corrupt them across
#     restarts;
#   * jupyter-ai's MCP server on 127.0.0.1: on "localhost" it also binds ::1, which fails
#     in a container without IPv6, and the MCP server stops;
#   * JupyterLab's extension manager read-only: the extensions come with the image (a pip
#     install into /opt/conda would not survive a restart), and its PyPI listing hangs
#     without internet access;
#   * /opt/conda/share/personal-hub/static served by the server itself (under
#     <base URL>static/personal-hub/): the installed itables' DataTables bundle, so
#     interactive tables work without internet access (a copy: the server does not
#     follow symbolic links out of a static directory).
#   * the server extensions in PersonalHubDeferred.extensions (jupyter-ai's LiteLLM,
#     Jupyternaut, ACP client and MCP server) are off at start and loaded by the
#     personal_hub_deferred server extension the first time something needs them: their
#     imports cost about 5 s and 200 MB at every start, before the server answers, also
#     for people who never open the AI chat (docs/contributing.md, benchmarks). A request
#     for one of their endpoints, or opening a chat document (load_first_for: its AI
#     personas are set up as it opens), waits for the load; the health check Jupyternaut's
#     lab plugin makes at every page load is answered without loading
#     (answer_while_pending). The build step turns them off in /opt/conda's config (the
#     directory that has the final say) and fails if the server would still load them;
#   * jupyter-resource-usage: CPU tracked too, the host's own figures not shown (a person
#     sees their container against its limits), no Prometheus metrics (nothing scrapes
#     a user server; one timer less);
#   * ContentsManager: hidden files reachable, and the hide_globs list, exactly as
#     Jupyternaut's link step sets them at start; it now links on first use, so they are
#     set here for the file API to be the same before and after the assistant loads.
# - /usr/local/etc/jupyter/jupyter_server_config.py, at every start: the AI assistant's
#   model as the hub sets it (HUB_AI_MODEL, HUB_AI_BASE_URL: personal_hub_assistant), and
#   a git name and e-mail for a person who has none (personal_hub_git; the Git panel's
#   first commit needs them).
# - /etc/ipython: every kernel turns on interactive DataFrame previews (lazily), and
#   finds the team's database connections by name (team_data, HUB_DATA_CONNECTIONS).
# - lab settings overrides: no news feed and no update checks (requests to the internet).
COPY --chown=${NB_UID}:${NB_GID} docker/singleuser/personal_hub_guard.py docker/singleuser/personal_hub_deferred.py docker/singleuser/personal_hub_assistant.py docker/singleuser/personal_hub_git.py docker/singleuser/team_data.py /tmp/personal-hub/
COPY docker/singleuser/jupyter_server_config.json docker/singleuser/jupyter_server_config.py /usr/local/etc/jupyter/
COPY docker/singleuser/personal_hub_guard.json docker/singleuser/personal_hub_deferred.json /usr/local/etc/jupyter/jupyter_server_config.d/
RUN purelib="$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
 && cp /tmp/personal-hub/*.py "${purelib}/" \
 && python -m compileall -q "${purelib}"/personal_hub_*.py "${purelib}/team_data.py" \
 && rm -r /tmp/personal-hub \
 && python -m personal_hub_deferred --disable-at-start /usr/local/etc/jupyter/jupyter_server_config.json
COPY docker/singleuser/ipython/ /etc/ipython/
COPY docker/singleuser/lab-overrides.json ${CONDA_DIR}/share/jupyter/lab/settings/overrides.d/personal-hub.json

# DockerSpawner runs the image's default command (start-notebook.py), which starts
# jupyterhub-singleuser when the hub's API token is in the environment.
