"""Semantic Distillers of SeeClear (Sec. 3.2, Eq. 8-9): frames -> semantic tokens O_i and segmentation features P_i.

Owns the `Semantics` result, the `SemanticDistiller` base class and three implementations with the same output shapes:

- `Mask2FormerDistiller`: a frozen Mask2Former panoptic segmenter (transformers'
  ``Mask2FormerForUniversalSegmentation``, COCO-panoptic's 133 classes), the closest available stand-in for the
  paper's OpenSeeD: O_i = the k decoder queries (post-LayerNorm, d = 256) with the highest non-"no object" class
  probability (Eq. 9's top-k over query similarity to the vocabulary); P_i = the pixel decoder's stride-4 mask
  features (256 channels), cropped to the frame.
- `ClipSegDistiller`: a frozen CLIPSeg (transformers' ``CLIPSegForImageSegmentation``) with an open vocabulary
  (COCO-panoptic's 133 classes by default). O_i = the k CLIP patch embeddings (projected to the joint image-text
  space) with the highest max-over-classes similarity to the vocabulary's text embeddings (Eq. 9); P_i = CLIPSeg's
  per-class mask probabilities for the whole vocabulary (one channel per class), at 1/4 of the frame size.
- `LearnedDistiller`: a small conv + transformer network trained from scratch with the condenser (works offline).

The two pretrained ones see the frames at their own aspect ratio, resized by a fixed factor ``scale`` (the same in
training crops and whole frames), zero-padded (in normalised units, i.e. the mean colour) to what the backbone needs,
and their maps are cropped back to the frame. They come in built: ``from_model`` takes a constructed model (the
caller loads pretrained weights outside ``model/``); ``from_config`` builds a randomly initialised one (tests).
transformers is imported only there.

Imports torch and einops (transformers lazily in ``from_config`` only); never ``seeclear_bench`` or ray, no file
I/O. Axes: b = clips, f = frames, n = b*f, k = tokens, d = token width, s = segmentation channels, q = queries.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar, NamedTuple, Self

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import Tensor, nn

__all__ = [
    "COCO_PANOPTIC_CLASSES",
    "ClipSegDistiller",
    "LearnedDistiller",
    "Mask2FormerDistiller",
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
#: ImageNet normalisation, the default of Mask2Former's image processor (and of the COCO-panoptic checkpoints'
#: ``preprocessor_config.json``); the loader passes the checkpoint's own values when it has them.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def vocabulary_prompts(vocabulary: Sequence[str], template: str = "a photo of a {}.") -> list[str]:
    """Text prompts for the vocabulary, to tokenize outside ``model/`` (or to pass a tokenizer to `from_model`)."""
    return [template.format(name) for name in vocabulary]


class Semantics(NamedTuple):
    """What a Semantic Distiller gives for a batch of clips (Eq. 8-9).

    Attributes:
        tokens: O_i (b f k d), per-frame semantic tokens.
        seg: P_i (b f s H/4 W/4), per-frame segmentation features covering the whole frame (H, W = the frames'
            size).
    """

    tokens: Tensor
    seg: Tensor


class SemanticDistiller(nn.Module):
    """Interface: ``forward(frames (b f 3 H W) in [-1, 1]) -> Semantics``.

    Attributes:
        frozen: class attribute; True for a pretrained distiller (weights loaded from outside, never trained, never
            saved with the condenser), False for one trained with it.
        n_tokens: k.
        token_dim: d.
        seg_channels: s.
    """

    frozen: ClassVar[bool] = False
    n_tokens: int
    token_dim: int
    seg_channels: int

    def train(self, mode: bool = True) -> Self:
        """A frozen distiller stays in eval mode whatever the model around it does; a learned one follows ``mode``."""
        return super().train(mode and not self.frozen)

    @staticmethod
    def _check_frames(frames: Tensor) -> None:
        if frames.ndim != 5 or frames.shape[2] != 3:
            raise ValueError(f"distiller expects frames (b f 3 H W) in [-1, 1], got shape {tuple(frames.shape)}")
        if frames.shape[-2] % 4 or frames.shape[-1] % 4:
            raise ValueError(f"distiller expects H and W divisible by 4, got {tuple(frames.shape[-2:])}")


def _check_scale(scale: float) -> None:
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not scale > 0:
        raise ValueError(f"scale must be a number > 0 (the fixed resize factor of the frames), got {scale!r}")


def _canvas(frames: Tensor, *, scale: float, multiple: int, mean: Tensor, std: Tensor) -> tuple[Tensor, tuple[int, int]]:
    """What a pretrained distiller sees: frames (b f 3 H W) in [-1, 1] -> normalised ((b f) 3 H' W'), content size.

    The frames keep their aspect ratio: they are resized by ``scale`` exactly (``recompute_scale_factor=False``: the
    sampling grid depends on ``scale`` alone, so a crop and the matching region of the whole frame see the same
    pixels away from the borders), normalised, then zero-padded at the bottom and right to a multiple of
    ``multiple``. Returns the padded batch and the size (floor(H*scale), floor(W*scale)) of the content in it.
    """
    x = rearrange(frames, "b f c h w -> (b f) c h w").float()
    x = ((x + 1) * 0.5).clamp(0, 1)
    if scale != 1:
        x = F.interpolate(x, scale_factor=scale, mode="bilinear", antialias=True, recompute_scale_factor=False)
    x = (x - mean) / std
    hgt, wid = x.shape[-2:]
    return F.pad(x, (0, -wid % multiple, 0, -hgt % multiple)), (hgt, wid)


def _frame_maps(maps: Tensor, content: tuple[int, int], canvas: tuple[int, int], size: tuple[int, int]) -> Tensor:
    """Maps (n c h w) over the padded ``canvas`` -> cropped to the ``content`` (what covers the frame), resized to
    ``size`` when they differ (with ``scale`` = 1 and a stride-4 map they do not; otherwise the last row/column may
    be part padding, under one map pixel)."""
    rows = -(-content[0] * maps.shape[-2] // canvas[0])
    cols = -(-content[1] * maps.shape[-1] // canvas[1])
    maps = maps[..., :rows, :cols]
    if tuple(maps.shape[-2:]) != size:
        maps = F.interpolate(maps, size=size, mode="bilinear", antialias=True)
    return maps


def _top_k(features: Tensor, score: Tensor, k: int) -> Tensor:
    """features (n L d), score (n L) -> the k features of highest score (n k d), by score descending, ties by index."""
    order = torch.sort(score, dim=1, descending=True, stable=True).indices[:, :k]
    return torch.gather(features, 1, repeat(order, "n k -> n k d", d=features.shape[-1]))


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

    Frames are mapped to [0, 1], resized by the fixed factor ``scale`` keeping their aspect ratio, CLIP-normalised
    and zero-padded to a multiple of the ViT's patch size; the ViT interpolates its position embeddings to the
    resulting (non-square) patch grid (transformers' ``interpolate_pos_encoding``).

    - O_i (Eq. 9): the vision encoder's patch tokens -> post-LayerNorm -> visual projection give image features
      F_img (n L d); their cosine similarity to the vocabulary's text embeddings F_txt is maxed over classes and the
      k patches with the highest score are kept, by score descending (ties by patch index).
    - P_i: CLIPSeg's decoder run once per class (FiLM-conditioned on that class's text embedding, in chunks of
      ``class_chunk`` classes) on the patch grid, sigmoid mask probabilities cropped to the frame and resized to
      1/4 of its size.

    Args:
        clipseg: a ``CLIPSegForImageSegmentation`` (weights already loaded); frozen here.
        input_ids: (V L) token ids of the vocabulary prompts.
        attention_mask: (V L) or None.
        vocabulary: the V class names (kept for reference).
        n_tokens: k; at most the number of patches of the (scaled) frames, checked per call.
        scale: the fixed resize factor of the frames (1 = the frames' own pixels).
        class_chunk: classes decoded together (memory/speed trade-off).

    Raises:
        ValueError: input_ids not (V L), n_tokens < 1 or scale not > 0.
    """

    frozen: ClassVar[bool] = True
    clipseg: Any  # a transformers model: typed loosely, its attributes are read by name
    text_embeds: Tensor
    mean: Tensor
    std: Tensor

    def __init__(
        self,
        clipseg: nn.Module,
        *,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        vocabulary: Sequence[str] = COCO_PANOPTIC_CLASSES,
        n_tokens: int = 100,
        scale: float = 1.0,
        class_chunk: int = 32,
    ) -> None:
        super().__init__()
        if input_ids.ndim != 2 or input_ids.shape[0] != len(vocabulary):
            raise ValueError(
                f"input_ids must be (V L) with V = {len(vocabulary)} vocabulary entries, got {tuple(input_ids.shape)}"
            )
        if n_tokens < 1:
            raise ValueError(f"n_tokens must be >= 1, got {n_tokens}")
        _check_scale(scale)
        self.clipseg = clipseg.eval().requires_grad_(False)
        self.vocabulary = tuple(vocabulary)
        self.n_tokens = n_tokens
        config: Any = clipseg.config
        self.token_dim = int(config.projection_dim)
        self.seg_channels = len(self.vocabulary)
        self.scale = float(scale)
        self.patch = int(config.vision_config.patch_size)
        self.class_chunk = class_chunk
        with torch.no_grad():
            text = self.clipseg.clip.get_text_features(input_ids=input_ids, attention_mask=attention_mask).pooler_output
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
            **kwargs: ``n_tokens``, ``scale``, ``class_chunk``.
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

    def canvas(self, frames: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """The pixels CLIPSeg sees: frames (b f 3 H W) in [-1, 1] -> (CLIP-normalised (n 3 H' W'), content size);
        H', W' = the scaled size padded to a multiple of the patch size."""
        x, content = _canvas(frames, scale=self.scale, multiple=self.patch, mean=self.mean, std=self.std)
        return x.to(self._dtype), content

    @property
    def _dtype(self) -> torch.dtype:
        return self.clipseg.clip.visual_projection.weight.dtype

    def image_features(self, pixels: Tensor) -> tuple[Tensor, Tensor, list[Tensor]]:
        """F_img and its class similarity (Eq. 8).

        Args:
            pixels: (n 3 H' W') from `canvas`.

        Returns:
            ``(features (n L d), similarity (n L V), activations)``: L = (H'/p)(W'/p) patches in row-major order,
            their cosine similarity to each class, and the hidden states CLIPSeg's decoder reads.
        """
        clip = self.clipseg.clip
        vision = clip.vision_model(pixel_values=pixels, output_hidden_states=True, interpolate_pos_encoding=True)
        patches = clip.visual_projection(clip.vision_model.post_layernorm(vision.last_hidden_state[:, 1:]))
        sim = F.normalize(patches.float(), dim=-1) @ F.normalize(self.text_embeds.float(), dim=-1).T
        acts = [vision.hidden_states[i + 1] for i in self.clipseg.extract_layers]
        return patches, sim, acts

    def decode(self, activations: Sequence[Tensor], conditions: Tensor, grid: tuple[int, int]) -> Tensor:
        """CLIPSeg's decoder on a ``grid`` = (rows, columns) patch grid, which need not be square.

        transformers' ``CLIPSegDecoder.forward`` reshapes the tokens to a square grid; this runs the same layers
        (reduce + add, FiLM at the conditional layer, decoder layers, transposed convolution) with the grid given.

        Args:
            activations: the ``extract_layers`` hidden states, each (n 1+rows*columns width).
            conditions: (n projection_dim), one text embedding per item.
            grid: the patch grid.

        Returns:
            Mask logits (n rows*p columns*p).
        """
        dec = self.clipseg.decoder
        out: Tensor | None = None
        for i, (act, layer, reduce) in enumerate(zip(activations[::-1], dec.layers, dec.reduces)):
            out = reduce(act) if out is None else reduce(act) + out
            if i == dec.conditional_layer:
                out = dec.film_mul(conditions)[:, None] * out + dec.film_add(conditions)[:, None]
            out = layer(out, attention_mask=None)
        assert out is not None
        out = rearrange(out[:, 1:], "n (h w) c -> n c h w", h=grid[0], w=grid[1])
        return dec.transposed_convolution(out).squeeze(1)

    @torch.no_grad()
    def forward(self, frames: Tensor) -> Semantics:
        """frames (b f 3 H W) in [-1, 1] -> Semantics(tokens (b f k d), seg (b f V H/4 W/4)).

        Raises:
            ValueError: bad frame shape, or frames whose scaled size gives fewer patches than ``n_tokens``.
        """
        self._check_frames(frames)
        b, _, _, hgt, wid = frames.shape
        pixels, content = self.canvas(frames)
        grid = (pixels.shape[-2] // self.patch, pixels.shape[-1] // self.patch)
        if grid[0] * grid[1] < self.n_tokens:
            raise ValueError(
                f"{hgt}x{wid} frames at scale {self.scale} give {grid[0]}x{grid[1]} CLIPSeg patches, fewer than "
                f"n_tokens = {self.n_tokens}; use larger frames (crops), a larger network.distiller_scale or fewer "
                "network.n_tokens"
            )
        patches, sim, acts = self.image_features(pixels)
        tokens = _top_k(patches, sim.amax(dim=-1), self.n_tokens)
        n = patches.shape[0]
        maps = []
        for start in range(0, self.seg_channels, self.class_chunk):
            cond = self.text_embeds[start : start + self.class_chunk].to(self._dtype)
            m = cond.shape[0]
            logits = self.decode([a.repeat_interleave(m, dim=0) for a in acts], cond.repeat(n, 1), grid)
            probs = torch.sigmoid(logits.float().reshape(n, m, *logits.shape[-2:]))
            maps.append(_frame_maps(probs, content, (pixels.shape[-2], pixels.shape[-1]), (hgt // 4, wid // 4)))
        seg = torch.cat(maps, dim=1)
        return Semantics(
            rearrange(tokens, "(b f) k d -> b f k d", b=b).float(),
            rearrange(seg, "(b f) s h w -> b f s h w", b=b).float(),
        )


class Mask2FormerDistiller(SemanticDistiller):
    """Frozen Mask2Former (panoptic, COCO's 133 classes) as the Semantic Distiller: OpenSeeD's closed-vocabulary
    sibling (same Swin-T + 6-layer deformable pixel decoder + masked-attention query decoder design, 256-d).

    Frames are mapped to [0, 1], resized by the fixed factor ``scale`` keeping their aspect ratio, normalised with
    the checkpoint's image-processor mean/std and zero-padded to a multiple of the backbone's total stride (32 for
    Swin), as Mask2Former's own padding does.

    - O_i (Eq. 9): the transformer decoder's last query states after its final LayerNorm (the states the class
      head reads, d = ``hidden_dim``); each query scores its largest class probability over the real classes
      (softmax over classes + "no object", the "no object" column dropped), and the k best queries are kept by score
      descending, ties by query index. In Mask2Former the class head *is* the similarity of a query to the (learned)
      class embeddings, so this is Eq. 9's topk(Sim(F_img, F_txt)) with a closed vocabulary.
    - P_i: the pixel decoder's mask features (``mask_feature_size`` = 256 channels, stride 4), the map every query's
      mask is a dot product with, cropped to the frame (and resized to H/4 x W/4 when ``scale`` != 1).

    Args:
        mask2former: a ``Mask2FormerForUniversalSegmentation`` (weights already loaded); frozen here.
        n_tokens: k; at most the model's ``num_queries``.
        scale: the fixed resize factor of the frames (1 = the frames' own pixels).
        mean: the image processor's ``image_mean`` (RGB, for [0, 1] pixels).
        std: the image processor's ``image_std``.

    Raises:
        ValueError: n_tokens outside [1, num_queries], scale not > 0, or mean/std not 3 values.
    """

    frozen: ClassVar[bool] = True
    mask2former: Any  # a transformers model: typed loosely, its attributes are read by name
    mean: Tensor
    std: Tensor

    def __init__(
        self,
        mask2former: nn.Module,
        *,
        n_tokens: int = 100,
        scale: float = 1.0,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        config: Any = mask2former.config
        if not 1 <= n_tokens <= config.num_queries:
            raise ValueError(f"n_tokens must lie in [1, {config.num_queries}] (Mask2Former's queries), got {n_tokens}")
        _check_scale(scale)
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f"mean and std must hold 3 (RGB) values, got {tuple(mean)} and {tuple(std)}")
        self.mask2former = mask2former.eval().requires_grad_(False)
        self.n_tokens = n_tokens
        self.token_dim = int(config.hidden_dim)
        self.seg_channels = int(config.mask_feature_size)
        self.scale = float(scale)
        self.multiple = _backbone_stride(config)
        self.vocabulary = tuple(config.id2label[i] for i in range(config.num_labels))
        self.register_buffer("mean", torch.tensor(tuple(mean), dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(tuple(std), dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_model(cls, mask2former: nn.Module, **kwargs: Any) -> Mask2FormerDistiller:
        """Wrap a constructed ``Mask2FormerForUniversalSegmentation`` (weights loaded); ``**kwargs``: ``n_tokens``,
        ``scale``, ``mean``, ``std``."""
        return cls(mask2former, **kwargs)

    @classmethod
    def from_config(cls, config: Any, **kwargs: Any) -> Mask2FormerDistiller:
        """Build a randomly initialised Mask2Former from a ``Mask2FormerConfig`` (tests; no download) and wrap it."""
        from transformers import Mask2FormerForUniversalSegmentation

        return cls.from_model(Mask2FormerForUniversalSegmentation(config), **kwargs)

    @property
    def _dtype(self) -> torch.dtype:
        return self.mask2former.class_predictor.weight.dtype

    def canvas(self, frames: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """The pixels Mask2Former sees: frames (b f 3 H W) in [-1, 1] -> (normalised (n 3 H' W'), content size);
        H', W' = the scaled size padded to a multiple of the backbone stride."""
        x, content = _canvas(frames, scale=self.scale, multiple=self.multiple, mean=self.mean, std=self.std)
        return x.to(self._dtype), content

    def queries(self, pixels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """All queries and their scores, and the mask features, for a `canvas` batch (Eq. 8).

        Returns:
            ``(queries (n q d), score (n q), mask_features (n s H'/4 W'/4))``: the decoder's normed last query
            states, each query's largest real-class probability, and the pixel decoder's stride-4 mask features.
        """
        out = self.mask2former.model(pixel_values=pixels)
        queries = self.mask2former.model.transformer_module.decoder.layernorm(out.transformer_decoder_last_hidden_state)
        probs = self.mask2former.class_predictor(queries).float().softmax(dim=-1)[..., :-1]
        return queries, probs.amax(dim=-1), out.pixel_decoder_last_hidden_state

    @torch.no_grad()
    def forward(self, frames: Tensor) -> Semantics:
        """frames (b f 3 H W) in [-1, 1] -> Semantics(tokens (b f k d), seg (b f s H/4 W/4))."""
        self._check_frames(frames)
        b, _, _, hgt, wid = frames.shape
        pixels, content = self.canvas(frames)
        queries, score, features = self.queries(pixels)
        tokens = _top_k(queries, score, self.n_tokens)
        seg = _frame_maps(features.float(), content, (pixels.shape[-2], pixels.shape[-1]), (hgt // 4, wid // 4))
        return Semantics(
            rearrange(tokens, "(b f) k d -> b f k d", b=b).float(),
            rearrange(seg, "(b f) s h w -> b f s h w", b=b),
        )


def _backbone_stride(config: Any) -> int:
    """The total stride of Mask2Former's backbone (Swin: patch size * 2^(stages - 1) = 32), so the pixel decoder's
    stride-4..32 maps tile the padded input exactly."""
    backbone = config.backbone_config
    patch, depths = getattr(backbone, "patch_size", None), getattr(backbone, "depths", None)
    if isinstance(patch, int) and depths:
        return patch * 2 ** (len(depths) - 1)
    return int(max(config.feature_strides))
