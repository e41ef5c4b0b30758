"""espcn-lab: train, evaluate and deploy ESPCN (Shi et al., CVPR 2016) super-resolution networks."""

__version__ = "0.12.0"
