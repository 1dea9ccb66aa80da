# personal-hub: system-wide IPython kernel config of the single-user image, installed as
# /etc/ipython/ipython_kernel_config.py (outside the persistent home volume, so an image
# update updates it). Every IPython kernel of the image runs the startup file below, which
# turns on interactive DataFrame previews; it never imports anything heavy at kernel start
# and can never stop a kernel from starting.
# jupysql's `%load_ext sql` is not run here on purpose: it imports pandas, SQLAlchemy and
# sqlglot and took a kernel from ready in 0.55 s to 1.4 s (2 cores), on every kernel start,
# SQL or not. Notebooks that use SQL cells start with `%load_ext sql`.
# A user's own ~/.ipython/profile_default/ipython_kernel_config.py is loaded after this one;
# one that assigns `c.InteractiveShellApp.exec_lines = [...]` replaces this list (use
# `.append(...)` there to keep it).
c = get_config()  # noqa: F821

STARTUP = "/etc/ipython/personal_hub_startup.py"
c.InteractiveShellApp.exec_lines.append(
    # A fresh namespace: nothing of the startup file leaks into the user's variables.
    f"exec(compile(open({STARTUP!r}).read(), {STARTUP!r}, 'exec'), {{}})"
)

# The team's database connections (HUB_DATA_CONNECTIONS, see team_data): this kernel's
# own jupysql connections file, so `%sql --section NAME` connects by name.
try:
    import team_data

    _connections = team_data.write_connections_file()
    if _connections:
        c.SqlMagic.dsn_filename = _connections
except Exception as error:  # noqa: BLE001 - a kernel must start regardless
    print(f"personal-hub: team connections not available: {type(error).__name__}")

