"""nn.Modules of SeeClear (Pixel Condenser U-Net, Semantic Distiller, InCAM, CaTeGory, wavelets). Skeleton for now."""
from __future__ import annotations
