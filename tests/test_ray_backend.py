"""The executor's Ray backend fails fast in one line naming the address (qmoe.ray_backend): a
malformed RAY_ADDRESS, one where no Ray cluster answers, or Ray not installed."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from repo_params import PARAMS
from synthetic_features import feature_folder

from qmoe import ray_backend
from qmoe.io import SetupError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "address, where",
    [
        ("10.0.0.5:6379", ("10.0.0.5", 6379)),
        ("head.cluster.local:6379", ("head.cluster.local", 6379)),
        ("ray://10.0.0.5:10001", ("10.0.0.5", 10001)),
        ("[fd00::5]:6379", ("fd00::5", 6379)),
        ("auto", None),
    ],
)
def test_cluster_addresses_ray_reads(address, where):
    assert ray_backend.cluster_address(address) == where


@pytest.mark.parametrize(
    "address", ["nowhere", "10.0.0.5", "http://10.0.0.5:8265", "h:0", "h:99999"]
)
def test_a_malformed_address_is_one_line_naming_it(address):
    with pytest.raises(SetupError) as e:
        ray_backend.cluster_address(address)
    assert str(e.value) == (
        f"RAY_ADDRESS={address!r} is not a Ray cluster address: expected host:port (the head's "
        "GCS port, e.g. 10.0.0.5:6379), ray://host:port or auto; unset it to run a local Ray"
    )


@contextlib.contextmanager
def server(reply: bytes | None) -> Iterator[int]:
    """A local TCP server answering each connection with `reply` (None: accepts, says nothing)."""
    srv = socket.create_server(("127.0.0.1", 0))
    held = []

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = srv.accept()
                held.append(conn)
                if reply is not None:
                    conn.recv(64)
                    conn.sendall(reply)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield srv.getsockname()[1]
    finally:
        srv.close()
        for conn in held:
            conn.close()


def _refused_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as s:
        return s.getsockname()[1]  # closed on exit: nothing listens there


def test_a_grpc_server_passes_the_probe():
    settings = bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])  # what Ray's GCS sends first (HTTP/2 SETTINGS)
    with server(settings) as port:
        ray_backend.probe(f"127.0.0.1:{port}")


@pytest.mark.parametrize(
    "reply, reason",
    [
        (None, "no answer within 0.5 s"),
        (b"HTTP/1.1 400 Bad Request\r\n\r\n", "something answers there, but not Ray (no gRPC)"),
    ],
)
def test_a_head_that_does_not_answer_as_ray_fails_in_bounded_time_naming_it(reply, reason):
    with server(reply) as port:
        with pytest.raises(SetupError) as e:
            ray_backend.probe(f"127.0.0.1:{port}", timeout_s=0.5)
    assert str(e.value) == (
        f"RAY_ADDRESS=127.0.0.1:{port}: no Ray cluster at 127.0.0.1:{port}: {reason}; start its "
        f"head (ray start --head --port {port}) or unset RAY_ADDRESS to run a local Ray"
    )


def test_nothing_listening_is_named_at_once():
    port = _refused_port()
    with pytest.raises(SetupError, match=rf"^RAY_ADDRESS=127.0.0.1:{port}: no Ray cluster at "):
        ray_backend.probe(f"127.0.0.1:{port}")


def test_ray_not_installed_gives_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(SetupError) as e:
        ray_backend.connect(2)
    assert str(e.value) == (
        "execution.backend: ray needs Ray: .venv/bin/pip install -c requirements.lock -e '.[ray]'"
    )


NO_RAY = "raise ModuleNotFoundError(\"No module named 'ray'\", name='ray')\n"


@pytest.mark.parametrize(
    "env, line",
    [
        (
            {"RAY_ADDRESS": "nowhere"},
            "error: RAY_ADDRESS='nowhere' is not a Ray cluster address: expected host:port",
        ),
        ({"RAY_ADDRESS": "127.0.0.1:PORT"}, "error: RAY_ADDRESS=127.0.0.1:PORT: no Ray cluster"),
        ({"NO_RAY": "1"}, "error: execution.backend: ray needs Ray: .venv/bin/pip install"),
    ],
)
def test_the_train_stage_on_a_bad_cluster_exits_1_with_one_line(tmp_path, env, line):
    feature_folder(tmp_path)
    params = {
        **PARAMS,
        "study": {**PARAMS["study"], "variants": ["fp32"], "moe_variants": []},
        "train": {**PARAMS["train"], "seeds": [0], "epochs": 2},
        "execution": {"backend": "ray", "workers": 2},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    path = [p for p in [os.environ.get("PYTHONPATH")] if p]  # not pytest's sys.path: test folders
    if env.pop("NO_RAY", None):
        (tmp_path / "noray" / "ray").mkdir(parents=True)
        (tmp_path / "noray" / "ray" / "__init__.py").write_text(NO_RAY)
        path.insert(0, str(tmp_path / "noray"))
    port = str(_refused_port())
    env = {k: v.replace("PORT", port) for k, v in env.items()}
    r = subprocess.run(
        [sys.executable, str(ROOT / "stages" / "train.py"), "--dataset", "synthetic"]
        + ["--protocol", "corrected", "--features", str(tmp_path / "features")]
        + ["--lock", str(ROOT / "requirements.lock"), "--out", str(tmp_path / "runs")]
        + ["--cost", str(tmp_path / "cost")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"},
            **env,
            "PYTHONPATH": os.pathsep.join(path),
            "QMOE_LOG_LEVEL": "WARNING",
        },
    )
    assert r.returncode == 1, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(line.replace("PORT", port)), r.stderr
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []
