import numpy as np
import torch

from espcn_lab.checkpoint import save_safetensors
from espcn_lab.cli import main
from espcn_lab.config import load_config
from espcn_lab.evaluate.figures import first_layer_filters, last_layer_filters
from espcn_lab.imaging.degrade import DegradationSpec
from espcn_lab.model import build_model


def test_last_layer_filters_follow_the_periodic_shuffle():
    model = build_model(load_config(None, ["model.scale=2", "model.features=[1]", "model.kernels=[1,3]"]).model)
    with torch.no_grad():
        for ch in range(4):  # channel dy*2+dx gets the constant value ch
            model.last.weight[ch] = float(ch)
        model.last.weight[3, 0, 0, 0] = 10.0  # one tap to fix the normalisation's top
    img = last_layer_filters(model)[0] * 10.0  # undo the per-filter [0, 1] scaling (min 0, max 10)
    assert img.shape == (6, 6)
    assert np.allclose(img[0:2, 2:4], [[0, 1], [2, 3]])  # kernel tap (0, 1): one r x r block of channels
    assert img[1, 1] == 10.0  # channel 3 = (dy, dx) = (1, 1) of tap (0, 0)


def test_first_layer_filters_shape_and_range():
    f = first_layer_filters(build_model(load_config(None, []).model))
    assert f.shape == (64, 5, 5) and f.min() >= 0 and f.max() <= 1


def test_figures_cli_writes_pngs_and_paper_bicubic_psnr(tmp_path, shared_data, capsys):
    cfg = load_config(None, ["model.features=[8,4]"])
    path = save_safetensors(build_model(cfg.model), cfg, DegradationSpec(), tmp_path / "m.safetensors")
    try:
        main(["figures", str(path), "-o", str(tmp_path / "figs"), "--set14", str(shared_data / "Set14")])
    except SystemExit as done:
        assert done.code in (0, None)
    names = sorted(p.name for p in (tmp_path / "figs").glob("*.png"))
    assert names == ["fig3_first_layer.png", "fig4_last_layer.png", "fig5_baboon.png", "fig5_comic.png",
                     "fig5_monarch.png"]
    out = capsys.readouterr().out
    assert "fig5_baboon: bicubic 23.21 dB" in out and "fig5_comic: bicubic 23.12 dB" in out  # the paper's Fig. 5


def test_filter_mosaic_places_each_normalised_filter_on_white():
    from espcn_lab.evaluate.figures import filter_mosaic

    filters = first_layer_filters(build_model(load_config(None, ["model.features=[5,4]"]).model))  # 5 of 5x5
    mosaic = filter_mosaic(filters, zoom=1)
    assert mosaic.shape == (2 * 6 + 1, 3 * 6 + 1) and mosaic[0].min() == 255 and mosaic[:, 0].min() == 255
    first = mosaic[1:6, 1:6]
    assert first.min() == 0 and first.max() == 255 and np.array_equal(first, np.round(filters[0] * 255))
    assert filter_mosaic(filters).shape == (4 * 13, 4 * 19)
