import pickle
from dataclasses import dataclass
from typing import Literal

import pytest
import torch

from qmoe.contract.checkpoint import load_checkpoint, save_checkpoint
from qmoe.io import (
    ConfigError,
    atomic_dir,
    atomic_path,
    choose,
    from_section,
    load_params,
    require,
    seed_everything,
)


@dataclass(frozen=True)
class Cfg:
    lr: float = 1e-3
    epochs: int = 10
    seeds: tuple[int, ...] = (0,)
    mode: Literal["off", "log"] = "off"
    name: str | None = None

    def __post_init__(self):
        require(self.epochs >= 1, "cfg.epochs", f"{self.epochs} < 1")


def test_from_section_converts_and_defaults():
    cfg = from_section(Cfg, {"lr": 1, "seeds": [1, 2]}, "cfg")
    assert cfg == Cfg(lr=1.0, seeds=(1, 2))
    assert isinstance(cfg.lr, float)


@pytest.mark.parametrize(
    "section, message",
    [
        ({"lr": "5e-4"}, r"cfg.lr: expected a number, got str '5e-4'"),
        ({"epochs": 2.5}, r"cfg.epochs: expected an integer"),
        ({"epochs": True}, r"cfg.epochs: expected an integer"),
        ({"seeds": [0, "1"]}, r"cfg.seeds\[1\]: expected an integer"),
        ({"mode": False}, r"cfg.mode: False is not one of \['off', 'log'\]"),
        ({"epochs": 0}, r"cfg.epochs: 0 < 1"),
        ({"epoch": 3}, r"cfg: unknown key\(s\) \['epoch'\]; valid keys"),
    ],
)
def test_from_section_names_the_bad_field(section, message):
    with pytest.raises(ConfigError, match=message):
        from_section(Cfg, section, "cfg")


def test_choose_lists_valid_names():
    with pytest.raises(ConfigError, match=r"unknown backbone 'vgg'; valid: \['a', 'b'\]"):
        choose("vgg", {"b": 2, "a": 1}, "backbone")


def test_load_params_rejects_non_mapping(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_params(p)


def test_atomic_dir_leaves_nothing_on_failure(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as tmp:
            (tmp / "half.txt").write_text("x")
            raise RuntimeError("boom")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_replaces_on_success(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with atomic_dir(out) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]


def test_atomic_path_keeps_old_file_on_failure(tmp_path):
    p = tmp_path / "f.json"
    p.write_text("old")
    with pytest.raises(ValueError):
        with atomic_path(p) as tmp:
            tmp.write_text("new")
            raise ValueError
    assert p.read_text() == "old"


def test_checkpoint_round_trip_and_refuses_pickled_code(tmp_path):
    sd = {"w": torch.arange(6.0).view(2, 3)}
    save_checkpoint(tmp_path / "a.pt", sd, {"fold": 1, "names": ["x"]})
    ckpt = load_checkpoint(tmp_path / "a.pt")
    assert torch.equal(ckpt.state_dict["w"], sd["w"]) and ckpt.meta == {"fold": 1, "names": ["x"]}

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"state_dict": Evil(), "meta": {}}))
    with pytest.raises(ValueError, match="evil.pt is corrupt or not weights-only"):
        load_checkpoint(tmp_path / "evil.pt")
    with pytest.raises(FileNotFoundError, match="missing.pt not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_seed_everything_is_repeatable():
    seed_everything(3)
    a = torch.rand(4)
    g = seed_everything(3)
    assert torch.equal(a, torch.rand(4))
    assert torch.equal(
        torch.rand(2, generator=g), torch.rand(2, generator=torch.Generator().manual_seed(3))
    )


def test_stale_temporaries_of_dead_writers_are_swept_live_ones_kept(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    out = tmp_path / "out"
    code = (
        "import sys, time; from qmoe.io import atomic_dir\n"
        "with atomic_dir(sys.argv[1]) as tmp:\n"
        "    (tmp / 'big.bin').write_bytes(bytes(1000)); print(tmp.name, flush=True)\n"
        "    time.sleep(60)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True
    )
    part = tmp_path / proc.stdout.readline().strip()
    assert part.name.startswith(f".out.{proc.pid}.") and part.is_dir()
    os.kill(proc.pid, signal.SIGKILL)  # no cleanup runs
    proc.wait(timeout=10)
    legacy = tmp_path / ".out.abcd1234.part"  # an older, untagged temporary
    legacy.mkdir()
    live = tmp_path / f".out.{os.getpid()}.zz99zz99.part"  # a writer still running (this one)
    live.mkdir()
    other = tmp_path / ".outer.abcd1234.part"  # another output's temporary
    other.mkdir()
    with atomic_dir(out) as tmp:
        (tmp / "x").write_text("x")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out", live.name, other.name])
