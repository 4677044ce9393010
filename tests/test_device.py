import torch

from qmoe.device import ISA_FLAGS, _cpuinfo, device_id, device_info


def test_cpuinfo_parses_model_and_flags(tmp_path):
    p = tmp_path / "cpuinfo"
    p.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu avx2 avx512f amx_tile\n"
                 "processor\t: 1\nmodel name\t: other\n")
    model, flags = _cpuinfo(p)
    assert model == "Test CPU 9000" and {"avx2", "avx512f", "amx_tile"} <= flags


def test_device_info_records_threads_engine_and_every_isa_flag():
    info = device_info(threads=1)
    assert info["threads"] == 1 and info["torch"] == torch.__version__
    assert info["quantized_engine"] == torch.backends.quantized.engine
    assert set(info["isa"]) == set(ISA_FLAGS)
    assert device_id(info) == device_id(dict(info)) and len(device_id(info)) == 12
