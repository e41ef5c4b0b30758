"""What the training tests share: tiny shards cut by prep and two small validation images."""

import pytest
from _shards import noise_images, write_shards
from PIL import Image

from espcn_lab.imaging.read import iter_hr_images


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, shared_data):
    """(root, shards): 6 noise images in 2 shards; root/val holds two 48x60 Set5 crops."""
    root = tmp_path_factory.mktemp("fit")
    shards = write_shards(root / "shards", noise_images(6), scale=3, n_shards=2)
    (root / "val").mkdir()
    for name, img in list(iter_hr_images(shared_data / "Set5"))[:2]:
        Image.fromarray(img[:48, :60]).save(root / "val" / f"{name}.png")
    return root, shards
