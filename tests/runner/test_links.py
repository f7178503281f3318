"""runner.tracking.links: the links mgrun prints (tests/runner/test_ui_browser.py opens them)."""

from __future__ import annotations

from runner.tracking import Tracker, browse_line, experiment_url, run_url, ui_banner

VIEW = "?workflowType=machine_learning"


def test_the_view_goes_in_the_query_after_the_hash_route():
    assert experiment_url("http://h:1/", "7") == f"http://h:1/#/experiments/7{VIEW}"
    assert run_url("http://h:1", "7", "abc") == f"http://h:1/#/experiments/7/runs/abc{VIEW}"


def test_a_local_store_is_browsed_through_mgrun_ui_at_its_default_address():
    uri = "sqlite:////data/mlflow.db"
    local = f"http://127.0.0.1:5000/#/experiments/3/runs/r1{VIEW}"
    assert browse_line(uri, False, "3", "r1") == f"browse it: mgrun ui, then open {local}"
    assert browse_line(uri, True, "3", "r1") == (
        f"browse it: mgrun ui --tracking-uri {uri}, then open {local}"
    )
    assert browse_line("file:///data/mlruns", False, "3").endswith(f"/#/experiments/3{VIEW}")


def test_a_tracking_server_is_browsed_directly():
    line = browse_line("https://mlflow.example.org/team/", True, "3", "r1")
    assert line == f"browse it: https://mlflow.example.org/team/#/experiments/3/runs/r1{VIEW}"
    assert browse_line("databricks://team", True, "3") == (
        "browse it: experiment 3 in the MLflow UI of databricks://team"
    )


def test_the_ui_banner_links_every_experiment_of_the_store(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert ui_banner(uri, "0.0.0.0", 5001) == "MLflow UI on http://127.0.0.1:5001 (Ctrl-C stops it)"
    assert not (tmp_path / "mlflow.db").exists()  # the banner never creates the store
    moons = Tracker(uri, "moons").experiment_id
    lines = ui_banner(uri, "127.0.0.1", 5001).splitlines()
    assert lines[1] == "experiments, opened in the Model training view:"
    assert f"  moons    http://127.0.0.1:5001/#/experiments/{moons}{VIEW}" in lines
    assert ui_banner(uri, "::1", 5001).startswith("MLflow UI on http://[::1]:5001 ")
