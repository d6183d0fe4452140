"""The GPU session's packing (bench/gpu_session.py): what comes back from the GPU machine is at most 8 files of
16 MiB and 64 MiB together, so the checkpoints are packed within those limits, XCiT first, and the rest named."""
import importlib.util
import tarfile
from pathlib import Path

from vitviz.train.zoo import ZOO

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("gpu_session", ROOT / "bench" / "gpu_session.py")
gpu_session = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_session)

MIB = 2**20


def fake_zoo(directory: Path, sizes_mib: dict) -> list[Path]:
    paths = []
    for name, mib in sizes_mib.items():
        path = directory / f"{name}.safetensors"
        path.write_bytes(b"\0" * int(mib * MIB))
        path.with_suffix(".json").write_text("{}")
        paths.append(path)
    return paths


def test_the_shipped_zoo_sizes_are_packed_within_the_return_limits(tmp_path):
    # the fp16 sizes of the shipped checkpoints at stop 20 (MiB): together ~65 MiB, over what can come back
    sizes = {"xcit_n12_p4_32_fsne": 5.4, "xcit_n12_p4_32_sne": 5.8, "xcit_n12_p4_32_psne": 6.0,
             "xcit_n12_p4_32_linear": 5.8, "cct_7_3x1_32": 7.2, "pit_32": 8.6, "levit_32": 13.4,
             "vit_softmax_32": 1.1, "cvt_32": 7.7, "vit_performer_32_conv_rope": 1.2,
             "vit_nystrom_32_conv_rope": 1.2, "vit_softmax_32_conv_rope": 1.2, "vit_linformer_32_conv_rope": 1.5,
             "mixer_32_conv": 1.5, "fnet_32_conv": 0.8}
    out = tmp_path / "out"
    out.mkdir()
    result = gpu_session.pack(fake_zoo(tmp_path, dict(reversed(list(sizes.items())))), out)
    files = [out / f for f in result["files"]]
    assert 1 <= len(files) <= gpu_session.PACK_FILES
    assert all(f.stat().st_size <= 16 * MIB for f in files)
    assert sum(f.stat().st_size for f in files) <= gpu_session.PACK_TOTAL_BYTES + 64 * 1024  # tar headers
    packed = {Path(m.name).stem for f in files for m in tarfile.open(f).getmembers() if m.name.endswith(".json")}
    assert packed.isdisjoint(result["left_out"]) and packed | set(result["left_out"]) == set(sizes)
    assert {n for n in sizes if n.startswith("xcit")} <= packed        # the XCiT variants first
    assert result["left_out"] == ["levit_32"]                          # ~65 MiB cannot all come back: the largest
    assert set(gpu_session.PACK_ORDER) == set(gpu_session.ORDER) == set(ZOO)  # every zoo entry has its place
    assert sum(sizes[n] for n in packed) * MIB <= gpu_session.PACK_TOTAL_BYTES


def test_a_small_zoo_comes_back_whole(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    result = gpu_session.pack(fake_zoo(tmp_path, {"xcit_n12_p4_32_fsne": 1, "cvt_32": 2, "fnet_32_conv": 0.5}), out)
    assert result["left_out"] == [] and len(result["files"]) == 1
