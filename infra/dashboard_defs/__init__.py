"""Dashboards as code: typed widget/panel models, one module per dashboard, and the layout preview (the checked-in
files under dashboards/ are written from the plan by infra/offline/dashboard_files.py).

`cloudwatch.py` / `grafana.py` are the models (widgets, panels, grid layout). `edge.py`, `anomaly.py`, `slo.py`
build the CloudWatch dashboards; `grafana_boards.py` builds the Grafana ones. Every threshold and query comes
from the definitions the alerts use (config sections, `lambdas/edge_inference/emf.py`, `infra/slo/spec.py`), so
changing an SLO or a threshold changes the alert and the dashboard together.
"""
