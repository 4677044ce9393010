import torch

from qmoe.bench.device import ISA_FLAGS, _cpuinfo, device_id, device_info


def test_cpuinfo_parses_model_and_flags(tmp_path):
    p = tmp_path / "cpuinfo"
    p.write_text(
        "processor\t: 0\nmodel name\t: Test CPU 9000\n"
        "flags\t\t: fpu avx2 avx512f amx_tile\n"
        "processor\t: 1\nmodel name\t: other\n"
    )
    model, flags = _cpuinfo(p)
    assert model == "Test CPU 9000" and {"avx2", "avx512f", "amx_tile"} <= flags


def test_device_info_records_threads_engine_and_every_isa_flag():
    info = device_info(threads=1)
    assert info["threads"] == 1 and info["torch"] == torch.__version__
    assert info["quantized_engine"] == torch.backends.quantized.engine
    assert set(ISA_FLAGS) <= set(info["isa"])
    assert device_id(info) == device_id(dict(info)) and len(device_id(info)) == 12


def test_isa_record_lists_every_avx512_and_amx_flag_present():
    from qmoe.bench.device import isa_record

    record = isa_record({"avx2", "avx512vl", "amx_fp16", "sse4_2"})
    assert record["avx2"] is True and record["avx512f"] is False
    assert record["avx512vl"] is True and record["amx_fp16"] is True and "sse4_2" not in record
    assert set(ISA_FLAGS) <= set(record)
