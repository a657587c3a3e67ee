import stat

import numpy as np
import onnx
import pytest
from PIL import Image

from cartoon import Cartoonizer, WeightsError, from_pretrained
from cartoon.export import export_onnx, main as export_main
from cartoon.runners import OnnxRunner, TorchRunner
from cartoon.tiling import run_tiled, to_network


@pytest.fixture(scope="module")
def exported(lite_weights, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx")
    assert export_main([str(lite_weights), "-o", str(out)]) == 0
    return out


def test_export_writes_four_graphs_with_dynamic_size(exported, tmp_path):
    names = sorted(p.name for p in exported.iterdir())
    assert names == ["model.int8.onnx", "model.onnx", "model.tiles.int8.onnx", "model.tiles.onnx"]
    (tmp_path / "plain").write_bytes(b"")  # the mode open() gives under this umask, not the temporary file's 0600
    modes = {stat.S_IMODE((exported / n).stat().st_mode) for n in names}
    assert modes == {stat.S_IMODE((tmp_path / "plain").stat().st_mode)}
    graph = onnx.load(str(exported / "model.onnx")).graph
    dims = graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ["batch", "", "height", "width"]
    assert [o.name for o in graph.output][:2] == ["cartoon", "saliency"]


def test_onnxruntime_matches_torch_within_1e3(lite_weights, exported, astronaut_small):
    torch_runner = TorchRunner(from_pretrained(lite_weights), device="cpu", precision="fp32")
    ort_runner = OnnxRunner(exported, threads=2)
    for size in [(128, 128), (72, 100)]:  # dynamic height and width
        x = to_network(np.asarray(Image.fromarray(astronaut_small).resize(size[::-1])))
        ty, ts, tstats = torch_runner(x, record=True)
        oy, os_, ostats = ort_runner(x, record=True)
        assert np.abs(ty - oy).max() < 1e-3 and np.abs(ts - os_).max() < 1e-3
        assert all(np.abs(a - b).max() < 1e-3 for a, b in zip(tstats, ostats))
        ty2, _, _ = torch_runner(x, stats=tstats)
        oy2, _, _ = ort_runner(x, stats=tstats)
        assert np.abs(ty2 - oy2).max() < 1e-3


def test_tiled_onnx_matches_tiled_torch(lite_weights, exported, astronaut_small):
    img = np.asarray(Image.fromarray(astronaut_small).resize((192, 160)))
    a, _ = run_tiled(TorchRunner(from_pretrained(lite_weights), device="cpu"), img, 96, 32, 96)
    b, _ = run_tiled(OnnxRunner(exported, threads=2), img, 96, 32, 96)
    assert np.abs(a - b).max() < 0.5  # in 0..255 units


def test_int8_runs_and_stays_close(lite_weights, exported, astronaut_small):
    ref = Cartoonizer(lite_weights)(astronaut_small).image.rgb.astype(float)
    q = Cartoonizer(lite_weights, backend="onnx-int8", onnx_dir=exported, threads=2)
    assert q.precision == "int8"
    out = q(astronaut_small).image.rgb.astype(float)
    assert out.shape == ref.shape and np.abs(out - ref).mean() < 20


def test_missing_onnx_files_are_named(lite_weights, tmp_path):
    with pytest.raises(WeightsError, match="model.onnx: missing; export it"):
        Cartoonizer(lite_weights, backend="onnx", onnx_dir=tmp_path)
    (tmp_path / "model.onnx").write_bytes(b"garbage")
    (tmp_path / "model.tiles.onnx").write_bytes(b"garbage")
    with pytest.raises(WeightsError, match="cannot load the ONNX model"):
        Cartoonizer(lite_weights, backend="onnx", onnx_dir=tmp_path)


def test_export_cli_reports_errors(tmp_path, capsys):
    assert export_main([str(tmp_path / "nowhere")]) == 2
    assert "error:" in capsys.readouterr().err


def test_the_onnx_backend_runs_without_torch(lite_weights, exported, astronaut_small, tmp_path):
    """onnxruntime alone: with torch made unimportable, the package, a tiled ONNX run and a Studio scene run work,
    and give what they give here."""
    import shutil
    import subprocess
    import sys

    from conftest import REPO

    folder = tmp_path / "style"  # a weights folder with its ONNX export, as `python -m cartoon.export` leaves it
    shutil.copytree(lite_weights, folder)
    for p in exported.iterdir():
        shutil.copy(p, folder / p.name)
    img = np.ascontiguousarray(np.asarray(Image.fromarray(astronaut_small).resize((150, 110))))
    np.save(tmp_path / "in.npy", img)
    code = f"""
import sys
sys.modules["torch"] = None  # `import torch` fails from here on
import numpy as np
from cartoon import Cartoonizer, Studio
img = np.load({str(tmp_path / "in.npy")!r})
np.save({str(tmp_path / "engine.npy")!r}, Cartoonizer({str(folder)!r}, backend="onnx", threads=2)(img, tile=64).image.rgb)
r = Studio(device="cpu", backend="onnx", threads=2).run(img, {str(folder)!r}, "scene", strength=0.5)
np.save({str(tmp_path / "studio.npy")!r}, r.image.rgb)
"""
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    engine = Cartoonizer(folder, backend="onnx", threads=2)
    assert np.array_equal(np.load(tmp_path / "engine.npy"), engine(img, tile=64).image.rgb)
    assert np.array_equal(np.load(tmp_path / "studio.npy"), engine(img, strength=0.5).image.rgb)


@pytest.mark.parametrize("skips", [False, True])
def test_the_output_filters_and_the_skips_export(tmp_path, astronaut_small, skips):
    import dataclasses

    import torch

    from cartoon import Generator, save_pretrained
    from cartoon.network import CONFIGS

    torch.manual_seed(0)
    g = Generator(dataclasses.replace(CONFIGS["lite-res"], smooth_radius=2, chroma_gain=1.3, skips=skips))
    torch.nn.init.normal_(g.up[-2][-1].weight, std=0.05)  # a residual generator starts at the identity: move it
    if skips:  # and its skips at zero
        torch.nn.init.normal_(g.skips[1].weight, std=0.05)
    save_pretrained(g, tmp_path / "w", card="# random smoothed lite generator for tests\n")
    assert export_main([str(tmp_path / "w"), "-o", str(tmp_path / "onnx"), "--no-int8"]) == 0
    x = to_network(np.asarray(Image.fromarray(astronaut_small).resize((100, 72))))
    ty, _, _ = TorchRunner(from_pretrained(tmp_path / "w"), device="cpu", precision="fp32")(x)
    oy, _, _ = OnnxRunner(tmp_path / "onnx", threads=1)(x)
    assert np.abs(ty - oy).max() < 1e-3
