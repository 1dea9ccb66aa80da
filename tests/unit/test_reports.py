"""Published reports: names, the render container (the owner's home read-only, no
network), the library on disk (no way out of it), and the index page's escaping."""

from __future__ import annotations

import pytest

from personal_hub.reports import (
    RENDERER,
    Library,
    RenderSettings,
    Report,
    ReportError,
    index_page,
    render_container,
    report_name,
)

SETTINGS = RenderSettings(image="my/notebook:1", data_dir="/srv/jupyterhub",
                          network="jupyterhub-net", mem_limit=1024**3, pids_limit=512)


@pytest.mark.parametrize(
    ("text", "notebook", "name"),
    [("", "reports/Sales 2026.ipynb", "sales-2026"), ("q3", "x.ipynb", "q3"),
     ("  Weekly  ", "x.ipynb", "weekly")],
)
def test_report_names(text, notebook, name):
    assert report_name(text, notebook) == name


@pytest.mark.parametrize("text", ["../x", "a/b", "-x", "a" * 64, "ä"])
def test_odd_names_are_refused(text):
    with pytest.raises(ReportError):
        report_name(text, "x.ipynb")


def test_the_render_container_reads_the_home_and_reaches_nothing():
    arguments = render_container(SETTINGS, "r.ipynb", True, "jupyterhub-user-ann",
                                 "/services/reports/static/")
    assert arguments["volumes"] == {"jupyterhub-user-ann": {"bind": "/home/jovyan",
                                                            "mode": "ro"}}
    assert arguments["network_mode"] == "none"
    assert arguments["labels"] == {"personal-hub.render": "jupyterhub-net"}  # this hub's
    assert arguments["cap_drop"] == ["ALL"]
    assert arguments["security_opt"] == ["no-new-privileges:true"]
    assert arguments["mem_limit"] == arguments["memswap_limit"] == 1024**3
    assert arguments["command"] == ["python", "-c", RENDERER, "r.ipynb", "1",
                                    "/services/reports/static/"]
    compile(RENDERER, "renderer", "exec")


def test_the_library_keeps_reports_per_owner(tmp_path):
    library = Library(tmp_path)
    report = Report("ann", "sales", "reports/sales.ipynb", "2026-11-28T09:30")
    library.save(report, "<html>sales</html>",
                 {"plotly/7.1.0/plotly.min.js": "plotly", "../../etc/x.js": "no",
                  "itables/2.9.1/dt_bundle.js": "bundle"})
    assert library.page("ann", "sales") == b"<html>sales</html>"
    assert library.reports() == [report] and library.reports("ann") == [report]
    assert library.reports("bob") == []
    assert library.asset("plotly/7.1.0/plotly.min.js") == b"plotly"
    assert library.asset("itables/2.9.1/dt_bundle.js") == b"bundle"
    assert not (tmp_path / "etc").exists()
    # Nothing outside the library, whatever the URL says.
    (tmp_path.parent / "sales.html").write_text("outside")
    for owner, name in (("..", "sales"), ("ann", "../ann/sales"), ("ann/..", "sales"),
                        ("ann", "sales.json"), (".", "sales")):
        assert library.page(owner, name) is None
    for relative in ("../ann/sales.html", ".static/x.js", "plotly/7.1.0/../../x.js"):
        assert library.asset(relative) is None
    assert not library.remove("bob", "sales")
    assert library.remove("ann", "sales") and library.page("ann", "sales") is None


def test_the_index_escapes_names_and_paths():
    report = Report("<ann>", "sales", "<img src=x>.ipynb", "2026-11-28T09:30")
    text = index_page("<ann>", [report], [report], "/services/reports/", "<input xsrf>")
    assert "<img src=x>" not in text and "&lt;img src=x&gt;" in text
    assert "<ann>" not in text
    assert 'href="/services/reports/view/%3Cann%3E/sales/"' in text
