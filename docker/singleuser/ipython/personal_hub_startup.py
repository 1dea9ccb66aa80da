"""personal-hub: interactive DataFrame previews on by default (run when a kernel starts).

Installed as /etc/ipython/personal_hub_startup.py and run by /etc/ipython/ipython_kernel_config.py.

Nothing is imported at kernel start: a lazy IPython HTML formatter is registered for pandas
DataFrames and Series. The first time one is displayed, it turns on itables' interactive
tables (`itables` renders them with DataTables) and steps aside, so from then on itables'
own switch applies:
    from itables import init_notebook_mode; init_notebook_mode(all_interactive=False)
gives pandas' plain HTML tables back.

itables normally loads its JavaScript bundle from a CDN (or, offline, from a notebook cell's
output). Here the single-user server serves the bundle of the installed itables itself, under
`<server base URL>static/personal-hub/itables/<version>/` (ServerApp.extra_static_paths in
/usr/local/etc/jupyter/jupyter_server_config.json): tables render without internet access and
without storing a copy of the bundle in every notebook. A different itables version (e.g. one
a user installed with `pip install --user`) keeps its own default.

Any failure leaves pandas' default display in place and never breaks the kernel.
"""

import os
import sys

STATIC_ROOT = "/opt/conda/share/personal-hub/static"
# (module, class) as IPython's formatters look them up: pandas 3 names its public classes'
# module "pandas", pandas 2 "pandas.core.frame" / "pandas.core.series".
TYPES = (
    ("pandas", "DataFrame"),
    ("pandas", "Series"),
    ("pandas.core.frame", "DataFrame"),
    ("pandas.core.series", "Series"),
)


def _warn(message):
    print(f"personal-hub: {message}; DataFrames keep pandas' default display", file=sys.stderr)


def served_bundle_url(itables_module):
    """The bundle URL on this server, or None if the server does not serve this itables."""
    path = f"personal-hub/itables/{itables_module.__version__}/dt_bundle.js"
    if not os.path.isfile(os.path.join(STATIC_ROOT, path)):
        return None
    # JupyterHub sets the server's URL prefix (/user/<name>/); the kernel inherits it.
    base_url = os.environ.get("JUPYTERHUB_SERVICE_PREFIX") or "/"
    return f"{base_url.rstrip('/')}/static/{path}"


def enable_itables(formatter, obj):
    """First display of a DataFrame/Series: hand over to itables, then render `obj`."""
    for module, cls in TYPES:
        try:
            formatter.pop(f"{module}.{cls}")
        except KeyError:
            pass
    try:
        import itables.options
        from itables import javascript

        url = served_bundle_url(itables)
        if url:
            itables.options.dt_url = url
        # init_notebook_mode(all_interactive=True) without its display: the repr methods
        # only. If the user already configured itables in this kernel, leave that alone.
        if not javascript._ORIGINAL_REPR_HTML:
            javascript.set_itables_repr_html_methods(True)
    except Exception as error:  # noqa: BLE001 - a preview must never break the kernel
        _warn(f"interactive tables are off ({error!r})")
    repr_html = getattr(obj, "_repr_html_", None)
    return repr_html() if repr_html else None


def main():
    try:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is None:
            return
        formatter = shell.display_formatter.formatters["text/html"]
        for module, cls in TYPES:
            formatter.for_type_by_name(module, cls, lambda obj: enable_itables(formatter, obj))
    except Exception as error:  # noqa: BLE001
        _warn(f"could not set up interactive tables ({error!r})")


main()
