"""Semantic Distillers of SeeClear (Sec. 3.2, Eq. 8-9): frames -> semantic tokens O_i and segmentation features P_i.

Owns the `Semantics` result, the `SemanticDistiller` base class and two implementations with the same output shapes:

- `ClipSegDistiller`: a frozen CLIPSeg (transformers' ``CLIPSegForImageSegmentation``) with an open vocabulary
  (COCO-panoptic's 133 classes by default). O_i = the k CLIP patch embeddings (projected to the joint image-text
  space) with the highest max-over-classes similarity to the vocabulary's text embeddings (Eq. 9); P_i = CLIPSeg's
  per-class mask probabilities for the whole vocabulary (one channel per class), at 1/4 of the input size.
  The CLIPSeg model comes in built: `from_model` takes a constructed model (the caller loads pretrained weights
  outside ``model/``); `from_config` builds a randomly initialised one (tests). transformers is imported only there.
- `LearnedDistiller`: a small conv + transformer network trained from scratch with the condenser (works offline).

Imports torch and einops (transformers lazily in `ClipSegDistiller.from_config` only); never ``seeclear_bench`` or
ray, no file I/O. Axes: b = clips, f = frames, k = tokens, d = token width, s = segmentation channels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import Tensor, nn

__all__ = [
    "COCO_PANOPTIC_CLASSES",
    "ClipSegDistiller",
    "LearnedDistiller",
    "SemanticDistiller",
    "Semantics",
    "vocabulary_prompts",
]

#: COCO-panoptic's 133 categories (80 things, then 53 stuff), OpenSeeD's default vocabulary, in contiguous-id order,
#: with the dataset's suffixes ("-merged", "-other", "-stuff") dropped and hyphens read as spaces.
COCO_PANOPTIC_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
    "banner", "blanket", "bridge", "cardboard", "counter", "curtain", "door", "wood floor", "flower", "fruit",
    "gravel", "house", "light", "mirror", "net", "pillow", "platform", "playingfield", "railroad", "river", "road",
    "roof", "sand", "sea", "shelf", "snow", "stairs", "tent", "towel", "brick wall", "stone wall", "tile wall",
    "wood wall", "water", "window blind", "window", "tree", "fence", "ceiling", "sky", "cabinet", "table", "floor",
    "pavement", "mountain", "grass", "dirt", "paper", "food", "building", "rock", "wall", "rug",
)  # fmt: skip

#: CLIP's image normalisation (CLIPSeg's processor uses the same).
CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)


def vocabulary_prompts(vocabulary: Sequence[str], template: str = "a photo of a {}.") -> list[str]:
    """Text prompts for the vocabulary, to tokenize outside ``model/`` (or to pass a tokenizer to `from_model`)."""
    return [template.format(name) for name in vocabulary]


class Semantics(NamedTuple):
    """What a Semantic Distiller gives for a batch of clips (Eq. 8-9).

    Attributes:
        tokens: O_i (b f k d), per-frame semantic tokens.
        seg: P_i (b f s h w), per-frame segmentation features (h, w = 1/4 of the distiller's input size).
    """

    tokens: Tensor
    seg: Tensor


class SemanticDistiller(nn.Module):
    """Interface: ``forward(frames (b f 3 H W) in [-1, 1]) -> Semantics``.

    Attributes:
        n_tokens: k.
        token_dim: d.
        seg_channels: s.
    """

    n_tokens: int
    token_dim: int
    seg_channels: int

    @staticmethod
    def _check_frames(frames: Tensor) -> None:
        if frames.ndim != 5 or frames.shape[2] != 3:
            raise ValueError(f"distiller expects frames (b f 3 H W) in [-1, 1], got shape {tuple(frames.shape)}")
        if frames.shape[-2] % 4 or frames.shape[-1] % 4:
            raise ValueError(f"distiller expects H and W divisible by 4, got {tuple(frames.shape[-2:])}")


class LearnedDistiller(SemanticDistiller):
    """A small distiller trained from scratch with the condenser (no pretrained weights needed).

    P_i: conv stem to 1/4 size, a residual conv, a 1x1 conv to s channels. O_i: two more stride-2 convs to 1/16
    size, a depthwise-conv position encoding, transformer layers over the patch tokens, then k learned queries
    cross-attend to them (attention pooling; there is no vocabulary to rank patches by, so Eq. 9's top-k becomes
    learned selection).

    Args:
        n_tokens: k.
        token_dim: d.
        seg_channels: s.
        channels: width of the 1/4-size features.
        layers: transformer layers over the patch tokens (and query layers).
        heads: attention heads (d divisible).
    """

    def __init__(
        self, *, n_tokens: int, token_dim: int, seg_channels: int, channels: int, layers: int, heads: int
    ) -> None:
        super().__init__()
        self.n_tokens, self.token_dim, self.seg_channels = n_tokens, token_dim, seg_channels
        self.stem = nn.Sequential(
            nn.Conv2d(3, channels, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(channels, channels, 3, stride=2, padding=1),
        )
        self.refine = nn.Sequential(
            nn.GELU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )
        self.seg_head = nn.Conv2d(channels, seg_channels, 1)
        self.patchify = nn.Sequential(
            nn.GELU(),
            nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(2 * channels, token_dim, 3, stride=2, padding=1),
        )
        self.pos = nn.Conv2d(token_dim, token_dim, 3, padding=1, groups=token_dim)
        self.encoder = nn.ModuleList(
            nn.TransformerEncoderLayer(token_dim, heads, 2 * token_dim, 0.0, batch_first=True, norm_first=True)
            for _ in range(layers)
        )
        self.queries = nn.Parameter(torch.randn(n_tokens, token_dim))
        self.decoder = nn.ModuleList(
            nn.TransformerDecoderLayer(token_dim, heads, 2 * token_dim, 0.0, batch_first=True, norm_first=True)
            for _ in range(layers)
        )
        self.out_norm = nn.LayerNorm(token_dim)

    def forward(self, frames: Tensor) -> Semantics:
        """frames (b f 3 H W) in [-1, 1] -> Semantics(tokens (b f k d), seg (b f s H/4 W/4))."""
        self._check_frames(frames)
        b = frames.shape[0]
        x = rearrange(frames, "b f c h w -> (b f) c h w")
        feat = self.stem(x)
        feat = feat + self.refine(feat)
        seg = self.seg_head(feat)
        patches = self.patchify(feat)
        patches = rearrange(patches + self.pos(patches), "n d h w -> n (h w) d")
        for layer in self.encoder:
            patches = layer(patches)
        q = repeat(self.queries, "k d -> n k d", n=patches.shape[0])
        for layer in self.decoder:
            q = layer(q, patches)
        tokens = self.out_norm(q)
        return Semantics(
            rearrange(tokens, "(b f) k d -> b f k d", b=b), rearrange(seg, "(b f) s h w -> b f s h w", b=b)
        )


class ClipSegDistiller(SemanticDistiller):
    """Frozen CLIPSeg as the Semantic Distiller (stand-in for OpenSeeD, see model/README.md).

    Frames are mapped to [0, 1], resized to ``input_size`` x ``input_size`` (CLIPSeg's decoder needs a square
    patch grid; 352 is its training size) and CLIP-normalised.

    - O_i (Eq. 9): the vision encoder's patch tokens -> post-LayerNorm -> visual projection give image features
      F_img (n L d); their cosine similarity to the vocabulary's text embeddings F_txt is maxed over classes and the
      k patches with the highest score are kept, in descending order.
    - P_i: CLIPSeg's decoder run once per class (FiLM-conditioned on that class's text embedding, in chunks of
      ``class_chunk`` classes), sigmoid mask probabilities resized to 1/4 of the input frames.

    Args:
        clipseg: a ``CLIPSegForImageSegmentation`` (weights already loaded); frozen here.
        input_ids: (V L) token ids of the vocabulary prompts.
        attention_mask: (V L) or None.
        vocabulary: the V class names (kept for reference).
        n_tokens: k; at most the number of patches (input_size / patch_size)^2.
        input_size: side of the square image fed to CLIPSeg (multiple of the patch size).
        class_chunk: classes decoded together (memory/speed trade-off).
    """

    def __init__(
        self,
        clipseg: nn.Module,
        *,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        vocabulary: Sequence[str] = COCO_PANOPTIC_CLASSES,
        n_tokens: int = 100,
        input_size: int = 352,
        class_chunk: int = 32,
    ) -> None:
        super().__init__()
        if input_ids.ndim != 2 or input_ids.shape[0] != len(vocabulary):
            raise ValueError(
                f"input_ids must be (V L) with V = {len(vocabulary)} vocabulary entries, got {tuple(input_ids.shape)}"
            )
        patch = clipseg.config.vision_config.patch_size
        if input_size % patch:
            raise ValueError(f"input_size must be a multiple of CLIPSeg's patch size {patch}, got {input_size}")
        n_patches = (input_size // patch) ** 2
        if not 1 <= n_tokens <= n_patches:
            raise ValueError(
                f"n_tokens must lie in [1, {n_patches}] (patches at input_size {input_size}), got {n_tokens}"
            )
        self.clipseg = clipseg.eval().requires_grad_(False)
        self.vocabulary = tuple(vocabulary)
        self.n_tokens = n_tokens
        self.token_dim = int(clipseg.config.projection_dim)
        self.seg_channels = len(self.vocabulary)
        self.input_size = input_size
        self.class_chunk = class_chunk
        with torch.no_grad():
            text = clipseg.clip.get_text_features(input_ids=input_ids, attention_mask=attention_mask).pooler_output
        self.register_buffer("text_embeds", text.float().clone(), persistent=False)
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_model(
        cls,
        clipseg: nn.Module,
        *,
        tokenizer: Callable[..., Any] | None = None,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        vocabulary: Sequence[str] = COCO_PANOPTIC_CLASSES,
        template: str = "a photo of a {}.",
        **kwargs: Any,
    ) -> ClipSegDistiller:
        """Wrap a constructed CLIPSeg; give either a ``tokenizer`` (HF tokenizer/processor) or ``input_ids``.

        Args:
            clipseg: ``CLIPSegForImageSegmentation`` with its weights loaded.
            tokenizer: called as ``tokenizer(prompts, padding=True, return_tensors="pt")``.
            input_ids: (V L) ids of ``vocabulary_prompts(vocabulary, template)``, when no tokenizer is given.
            attention_mask: (V L), with ``input_ids``.
            vocabulary: class names.
            template: prompt template.
            **kwargs: ``n_tokens``, ``input_size``, ``class_chunk``.
        """
        if (tokenizer is None) == (input_ids is None):
            raise ValueError("ClipSegDistiller.from_model needs exactly one of tokenizer= or input_ids=")
        if tokenizer is not None:
            enc = tokenizer(vocabulary_prompts(vocabulary, template), padding=True, return_tensors="pt")
            input_ids, attention_mask = enc["input_ids"], enc.get("attention_mask")
        device = next(clipseg.parameters()).device
        assert input_ids is not None
        return cls(
            clipseg,
            input_ids=input_ids.to(device),
            attention_mask=None if attention_mask is None else attention_mask.to(device),
            vocabulary=vocabulary,
            **kwargs,
        )

    @classmethod
    def from_config(cls, config: Any, **kwargs: Any) -> ClipSegDistiller:
        """Build a randomly initialised CLIPSeg from a ``CLIPSegConfig`` (tests; no download) and wrap it."""
        from transformers import CLIPSegForImageSegmentation

        return cls.from_model(CLIPSegForImageSegmentation(config), **kwargs)

    def train(self, mode: bool = True) -> ClipSegDistiller:
        """CLIPSeg stays in eval mode: it is frozen."""
        super().train(mode)
        self.clipseg.eval()
        return self

    def _pixels(self, frames: Tensor) -> Tensor:
        x = rearrange(frames, "b f c h w -> (b f) c h w").float()
        x = ((x + 1) * 0.5).clamp(0, 1)
        x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", antialias=True)
        return ((x - self.mean) / self.std).to(self._dtype)

    @property
    def _dtype(self) -> torch.dtype:
        return self.clipseg.clip.visual_projection.weight.dtype

    def image_features(self, frames: Tensor) -> tuple[Tensor, Tensor, list[Tensor]]:
        """F_img and its class similarity (Eq. 8).

        Args:
            frames: (b f 3 H W) in [-1, 1].

        Returns:
            ``(features (n L d), similarity (n L V), activations)``: n = b*f, L patches, cosine similarity to each
            class, and the hidden states CLIPSeg's decoder reads.
        """
        clip = self.clipseg.clip
        vision = clip.vision_model(pixel_values=self._pixels(frames), output_hidden_states=True)
        patches = clip.visual_projection(clip.vision_model.post_layernorm(vision.last_hidden_state[:, 1:]))
        sim = F.normalize(patches.float(), dim=-1) @ F.normalize(self.text_embeds.float(), dim=-1).T
        acts = [vision.hidden_states[i + 1] for i in self.clipseg.extract_layers]
        return patches, sim, acts

    @torch.no_grad()
    def forward(self, frames: Tensor) -> Semantics:
        """frames (b f 3 H W) in [-1, 1] -> Semantics(tokens (b f k d), seg (b f V H/4 W/4))."""
        self._check_frames(frames)
        b, _, _, hgt, wid = frames.shape
        patches, sim, acts = self.image_features(frames)
        idx = sim.amax(dim=-1).topk(self.n_tokens, dim=1).indices
        tokens = torch.gather(patches, 1, repeat(idx, "n k -> n k d", d=patches.shape[-1]))
        n = patches.shape[0]
        maps = []
        for start in range(0, self.seg_channels, self.class_chunk):
            cond = self.text_embeds[start : start + self.class_chunk].to(self._dtype)
            m = cond.shape[0]
            logits = self.clipseg.decoder([a.repeat_interleave(m, dim=0) for a in acts], cond.repeat(n, 1)).logits
            probs = torch.sigmoid(logits.float().reshape(n, m, *logits.shape[-2:]))
            maps.append(F.interpolate(probs, size=(hgt // 4, wid // 4), mode="bilinear", antialias=True))
        seg = torch.cat(maps, dim=1)
        return Semantics(
            rearrange(tokens, "(b f) k d -> b f k d", b=b).float(),
            rearrange(seg, "(b f) s h w -> b f s h w", b=b).float(),
        )
