"""The model server's entry points: one set of arguments, settings read through one table.

No server starts here (``tests/integration/test_serving.py`` serves over HTTP);
these check what happens before KServe is imported.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from mlops.core.errors import EXIT_USAGE, UsageError
from serving import server


def _parse(argv: list[str], one_model: bool = False) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    server.add_server_arguments(parser, one_model=one_model)
    return parser.parse_args(argv)


def test_local_servers_bind_loopback_and_the_pod_every_interface():
    assert _parse([]).host == "127.0.0.1"
    pod = _parse(
        ["--model-name", "m", "--storage-uri", "s3://b/models/m/v1", "--public-key", "k.pem"],
        one_model=True,
    )
    assert pod.host == "0.0.0.0"  # nosec B104 - what a pod must bind
    assert (pod.port, pod.public_key) == (8080, Path("k.pem"))


def test_the_port_lands_in_one_place_for_every_entry_point():
    assert _parse(["--port", "9001"]).port == 9001
    single = _parse(
        ["--model-name", "m", "--storage-uri", "/m", "--public-key", "k", "--http-port", "9002"],
        one_model=True,
    )
    assert single.port == 9002


def test_mlops_serve_takes_the_server_arguments():
    from mlops.cli import build_parser

    args = build_parser().parse_args(["serve", "--host", "127.0.0.2", "--port", "9003"])
    assert (args.host, args.port, args.public_key, args.needs_store) == (
        "127.0.0.2",
        9003,
        None,
        True,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MLOPS_RECONCILE_SECONDS", "soon"),
        ("MLOPS_RETRY_FAILED_SECONDS", "0"),
        ("MLOPS_MAX_BODY_BYTES", "1.5"),
        ("MLOPS_INFERENCE_LOG", "maybe"),
        ("MLOPS_INFERENCE_LOG_FLUSH_ROWS", "-1"),
        ("MLOPS_HEADER_TIMEOUT_SECONDS", "soon"),
        ("MLOPS_BODY_TIMEOUT_SECONDS", "0"),
        ("MLOPS_ADMIN_API", "maybe"),
    ],
)
def test_a_bad_serving_setting_is_a_usage_error_naming_it(
    variable, value, monkeypatch, tmp_path, capsys
):
    monkeypatch.setenv(variable, value)
    key = tmp_path / "key.pem"
    key.write_text("not read: the settings fail first")
    assert server.main(["--public-key", str(key)]) == EXIT_USAGE
    assert variable in capsys.readouterr().err
    single = ["--model-name", "m", "--storage-uri", str(tmp_path), "--public-key", str(key)]
    assert server.main_single(single) == EXIT_USAGE
    assert variable in capsys.readouterr().err
    # `mlops serve` calls run_server; the CLI maps UsageError to exit 2 in one place.
    with pytest.raises(UsageError, match=variable):
        server.run_server(public_key=key, store=object())


def test_a_missing_public_key_is_a_usage_error(tmp_path, capsys):
    assert server.main(["--public-key", str(tmp_path / "absent.pem")]) == EXIT_USAGE
    assert "public key not found" in capsys.readouterr().err


def test_the_header_deadline_is_uvicorns_own_protocol_with_a_timer():
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    from serving.connections import header_deadline_protocol

    protocol = header_deadline_protocol(0.5)
    assert issubclass(protocol, AutoHTTPProtocol)


def test_served_models_brings_back_what_unload_took_down():
    from kserve import Model

    class Once(Model):
        def __init__(self) -> None:
            super().__init__("m")
            self.loads = 0

        def load(self) -> bool:
            self.loads += 1
            self.ready = True
            return True

    repository = server.served_models()
    model = Once()
    repository.update(model)
    repository.unload("m")
    assert repository.get_model("m") is None and model.ready is False
    assert repository.load("m") is True
    assert repository.get_model("m") is model and model.loads == 1
    repository.remove("m")  # a removed deployment cannot be loaded back
    with pytest.raises(Exception, match="m does not exist"):
        repository.load("m")
