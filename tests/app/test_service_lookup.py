"""ApplicationConfig.service: by name through an index (a tick looks its service up several times;
with thousands of services a scan dominated the tick), the same answers as a scan."""

from __future__ import annotations

from app.config_file.loader import parse_config

CONFIG = """
prometheus: {url: "http://127.0.0.1:9"}
applications:
  - name: shop
    router: {type: haproxy, socket: /nonexistent.sock}
    services:
%s
policies:
  - name: p
    steps: [{weight: 100}]
"""


def test_every_service_is_found_by_name_and_no_other() -> None:
    names = [f"svc-{i}" for i in range(50)]
    config = parse_config(CONFIG % "\n".join(f"      - {{name: {n}, policy: p}}" for n in names))
    app = config.applications[0]
    assert [app.service(n).name for n in names] == names  # type: ignore[union-attr]
    assert app.service("svc-50") is None and app.service("") is None
    assert config.find_service("svc-7") == [app]


def test_a_copy_with_other_services_answers_from_its_own() -> None:
    config = parse_config(CONFIG % "      - {name: web, policy: p}\n      - {name: api, policy: p}")
    app = config.applications[0]
    assert app.service("api") is not None
    fewer = app.model_copy(update={"services": app.services[:1]})
    assert fewer.service("api") is None and fewer.service("web") is not None
    assert fewer != app and app == config.applications[0]
