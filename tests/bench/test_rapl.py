"""RAPL energy with the idle baseline subtracted, proved on a fake counter (no RAPL here)."""

import pytest

from qmoe.bench import rapl


class FakeMachine:
    """A package counter that grows at 10 W idle plus 2 mJ per inference, and a fake clock."""

    def __init__(self, tmp_path, start_uj=999_000_000, max_range=1_000_000_000):
        self.zone = tmp_path / "intel-rapl:0"
        self.zone.mkdir(parents=True)
        (self.zone / "max_energy_range_uj").write_text(str(max_range))
        (tmp_path / "intel-rapl:0:0").mkdir()  # a sub-zone (core): not a package
        self.max_range, self.now, self.uj = max_range, 0.0, start_uj
        self._write()

    def _write(self):
        (self.zone / "energy_uj").write_text(str(int(self.uj) % (self.max_range + 1)))

    def clock(self):
        return self.now

    def sleep(self, seconds):  # idle: 10 W
        self.now += seconds
        self.uj += 10.0 * seconds * 1e6
        self._write()

    def infer(self, n, seconds_each=0.001):  # 10 W idle share + 2 mJ each
        self.now += n * seconds_each
        self.uj += (10.0 * n * seconds_each + 2e-3 * n) * 1e6
        self._write()


def test_idle_baseline_is_subtracted_and_the_counter_wraps(tmp_path):
    m = FakeMachine(tmp_path)
    counter = rapl.find_rapl(tmp_path)
    assert counter is not None and len(counter.files) == 1  # sub-zone ignored
    idle = [rapl.measure(counter, lambda: m.sleep(5.0), 0, m.clock)]  # crosses the wrap
    busy = [
        rapl.measure(counter, lambda: m.infer(5000), 5000, m.clock),
        rapl.measure(counter, lambda: m.infer(6000), 6000, m.clock),
    ]
    assert idle[0].joules == pytest.approx(50.0)
    assert rapl.idle_power(idle) == pytest.approx(10.0)
    assert rapl.per_inference(busy, idle) == pytest.approx([2e-3, 2e-3])
    # without the subtraction the same blocks would read 12 mJ per inference, six times too much
    assert busy[0].joules / busy[0].calls == pytest.approx(12e-3)


def test_no_rapl_and_unreadable_rapl_give_none(tmp_path):
    assert rapl.find_rapl(tmp_path) is None
    zone = tmp_path / "intel-rapl:0"
    zone.mkdir()
    (zone / "energy_uj").write_text("not a number")
    assert rapl.find_rapl(tmp_path) is None


def test_bad_blocks_are_refused():
    with pytest.raises(ValueError, match="idle baseline needs at least one block"):
        rapl.per_inference([rapl.Block(1.0, 1.0, 10)], [])
    with pytest.raises(ValueError, match="at least one call"):
        rapl.per_inference([rapl.Block(1.0, 1.0, 0)], [rapl.Block(1.0, 1.0, 0)])
