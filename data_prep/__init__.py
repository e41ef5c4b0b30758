"""Dataset tooling behind ``espcn-lab prep``: image sources -> aligned LR/HR patch pairs -> WebDataset shards.

``sources`` lists and reads images (ImageNet layout, any folder, Hugging Face datasets), ``decode``
turns any image file into 8-bit RGB or a counted skip, ``patches`` cuts paper-style patch pairs
(pure, no I/O), ``shards`` owns the on-disk plan (atomic shards, sidecars, manifest) and ``prep``
runs it all in parallel. Never imports Lightning.
"""

from data_prep.prep import PrepOptions, run_prep

__all__ = ["PrepOptions", "run_prep"]
