"""BioViL / BioViL-T image side, as published (microsoft/hi-ml ``health_multimodal.image``).

- :class:`ImageModel`: ``encoder.encoder`` (a torchvision ResNet, run up to layer4, its ``fc`` kept but never
  used, as in the released files) and ``projector.model`` (1x1 conv without bias, BatchNorm, ReLU, 1x1 conv with
  bias: the joint space, 128 released). The global embedding is the **mean of the projected patch map**; the
  unprojected average pool is ``img_embedding``.
- :class:`MultiImageEncoder` (BioViL-T): the trunk, ``backbone_to_vit`` (1x1 conv to 256, no bias), a
  :class:`VisionTransformerPooler` over the current and prior patch tokens and ``missing_previous_emb`` (used
  when there is no prior); features are ``[patch_x, diff_x]`` (256 + 256).
- Preprocessing: :func:`remap_to_uint8` (min-max to uint8, truncating), :func:`chest_xray_transform` (PIL
  ``Resize(512)`` of the shorter side, ``CenterCrop``, ``ToTensor``, 3 equal channels; no mean / std).
- Grounding: :func:`similarity_map` (patch-text cosine, Gaussian sigma 1.5 with scipy's defaults) and
  :func:`to_image_size` (the map onto the original image, NaN outside the crop).
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: torchvision ResNets by (bottleneck?, blocks per layer).
RESNETS = {(False, (2, 2, 2, 2)): "resnet18", (False, (3, 4, 6, 3)): "resnet34",
           (True, (3, 4, 6, 3)): "resnet50", (True, (3, 4, 23, 3)): "resnet101",
           (True, (3, 8, 36, 3)): "resnet152"}
JOINT_FEATURE_SIZE = 128
#: BioViL-T: width of ``backbone_to_vit`` and of ``missing_previous_emb``; the pooler's patch grid.
MULTI_IMAGE_DIM = 256
MULTI_IMAGE_GRID = (14, 14)
RESIZE = 512
CROP_BIOVIL = 480
CROP_BIOVIL_T = 448
GAUSSIAN_SIGMA = 1.5


def resnet_arch(state: Mapping[str, Tensor], prefix: str = "encoder.encoder.") -> str:
    """The torchvision ResNet a state dict's trunk keys describe (``resnet18`` ... ``resnet152``)."""
    blocks = []
    for layer in range(1, 5):
        heads = {k[len(prefix):].split(".")[1] for k in state if k.startswith(f"{prefix}layer{layer}.")}
        blocks.append(len(heads))
    bottleneck = f"{prefix}layer1.0.conv3.weight" in state
    try:
        return RESNETS[(bottleneck, tuple(blocks))]
    except KeyError:
        raise ValueError(f"the image weights' trunk ({prefix}layer1..4: {blocks} blocks, "
                         f"{'bottleneck' if bottleneck else 'basic'}) is not a torchvision ResNet") from None


def _resnet(arch: str) -> nn.Module:
    import torchvision

    return getattr(torchvision.models, arch)(weights=None)


def resnet_features(resnet: nn.Module, x: Tensor) -> Tensor:
    """A torchvision ResNet up to layer4 (``ResNetHIML.forward``: no pooling, no ``fc``)."""
    x = resnet.maxpool(resnet.relu(resnet.bn1(resnet.conv1(x))))
    return resnet.layer4(resnet.layer3(resnet.layer2(resnet.layer1(x))))


def trunk_width(arch: str) -> int:
    return 2048 if arch in ("resnet50", "resnet101", "resnet152") else 512


class ImageEncoder(nn.Module):
    """``encoder.encoder``: the trunk; ``forward`` -> (layer4 map B x F x H/32 x W/32, its average pool)."""

    def __init__(self, arch: str = "resnet50") -> None:
        super().__init__()
        self.arch = arch
        self.encoder = _resnet(arch)
        self.feature_size = trunk_width(arch)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        patch = resnet_features(self.encoder, x)
        return patch, torch.flatten(F.adaptive_avg_pool2d(patch, (1, 1)), 1)


def sine_position_embedding(embedding_dim: int, grid: tuple[int, int], temperature: float = 10000.0,
                            scale: float = 2 * math.pi) -> Tensor:
    """DETR-style normalised sine embedding of an all-ones mask on ``grid``: 1 x (h w) x 2 embedding_dim,
    channels [pos_y, pos_x], each interleaved sin / cos (as ``SinePositionEmbedding(normalize=True)``)."""
    h, w = grid
    mask = torch.ones(1, h, w)
    y = mask.cumsum(1, dtype=torch.float32)
    x = mask.cumsum(2, dtype=torch.float32)
    y = y / (y[:, -1:, :] + 1e-6) * scale
    x = x / (x[:, :, -1:] + 1e-6) * scale
    dim_t = torch.arange(embedding_dim, dtype=torch.float32)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / embedding_dim)
    px, py = x[..., None] / dim_t, y[..., None] / dim_t
    px = torch.stack((px[..., 0::2].sin(), px[..., 1::2].cos()), dim=4).flatten(3)
    py = torch.stack((py[..., 0::2].sin(), py[..., 1::2].cos()), dim=4).flatten(3)
    return torch.cat((py, px), dim=3).view(1, h * w, embedding_dim * 2)


class _Attention(nn.Module):
    """Multi-head attention with separate q / k / v projections (no bias) and an output projection."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.proj_q = nn.Linear(dim, dim, bias=False)
        self.proj_k = nn.Linear(dim, dim, bias=False)
        self.proj_v = nn.Linear(dim, dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape

        def heads(t: Tensor) -> Tensor:
            return t.reshape(b, n, self.num_heads, c // self.num_heads).permute(0, 2, 1, 3)

        q, k, v = heads(self.proj_q(x)), heads(self.proj_k(x)), heads(self.proj_v(x))
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class _Block(nn.Module):
    """Pre-norm block; position + type embeddings are added to ``norm1(x)``, which feeds q, k **and** v."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 1.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = _Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = _Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, embed: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x) + embed)
        return x + self.mlp(self.norm2(x))


class VisionTransformerPooler(nn.Module):
    """BioViL-T's temporal pooler: 3 blocks over [current; prior] patch tokens, ``norm_post``, current tokens out."""

    def __init__(self, dim: int = MULTI_IMAGE_DIM, grid: tuple[int, int] = MULTI_IMAGE_GRID, num_heads: int = 8,
                 num_blocks: int = 3) -> None:
        super().__init__()
        self.grid = grid
        self.blocks = nn.ModuleList([_Block(dim, num_heads) for _ in range(num_blocks)])
        self.norm_post = nn.LayerNorm(dim, eps=1e-6)
        self.type_embed = nn.Parameter(torch.zeros(2, 1, dim))
        nn.init.trunc_normal_(self.type_embed, std=0.02)
        self.register_buffer("pos_embed", sine_position_embedding(dim // 2, grid), persistent=False)

    def forward(self, current: Tensor, previous: Tensor | None = None) -> Tensor:
        b, c, h, w = current.shape
        if (h, w) != tuple(self.grid):
            raise ValueError(f"the BioViL-T pooler needs a {self.grid[0]} x {self.grid[1]} patch grid "
                             f"(448 x 448 images), got {h} x {w}")
        tokens = current.reshape(b, c, h * w).transpose(1, 2)
        length = tokens.shape[1]
        pos = self.pos_embed.expand(b, -1, -1)
        embed = pos + self.type_embed[0].expand(b, length, -1)
        if previous is not None:
            if previous.shape != current.shape:
                raise ValueError(f"current {tuple(current.shape)} and prior {tuple(previous.shape)} differ in shape")
            prior = previous.reshape(b, c, h * w).transpose(1, 2)
            tokens = torch.cat([tokens, prior], dim=1)
            embed = torch.cat([embed, pos + self.type_embed[1].expand(b, length, -1)], dim=1)
        for block in self.blocks:
            tokens = block(tokens, embed)
        tokens = self.norm_post(tokens)
        return tokens[:, :length].transpose(1, 2).reshape(b, c, h, w)


class MultiImageEncoder(ImageEncoder):
    """BioViL-T's encoder: features [backbone_to_vit(layer4), diff] with diff from the pooler (prior given) or
    ``missing_previous_emb`` broadcast (no prior, what the published inference engine always does)."""

    def __init__(self, arch: str = "resnet50") -> None:
        super().__init__(arch)
        self.backbone_to_vit = nn.Conv2d(trunk_width(arch), MULTI_IMAGE_DIM, kernel_size=1, bias=False)
        self.vit_pooler = VisionTransformerPooler()
        self.missing_previous_emb = nn.Parameter(torch.zeros(1, MULTI_IMAGE_DIM, 1, 1))
        nn.init.trunc_normal_(self.missing_previous_emb, std=0.02)
        self.feature_size = 2 * MULTI_IMAGE_DIM

    def forward(self, x: Tensor, previous: Tensor | None = None) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        b = x.shape[0]
        if previous is not None:
            if previous.shape != x.shape:
                raise ValueError(f"current {tuple(x.shape)} and prior {tuple(previous.shape)} differ in shape")
            both = self.backbone_to_vit(resnet_features(self.encoder, torch.cat([x, previous])))
            patch, patch_prev = both[:b], both[b:]
            diff = self.vit_pooler(patch, patch_prev)
        else:
            patch = self.backbone_to_vit(resnet_features(self.encoder, x))
            diff = self.missing_previous_emb.repeat(b, 1, patch.shape[2], patch.shape[3])
        fused = torch.cat([patch, diff], dim=1)
        return fused, torch.flatten(F.adaptive_avg_pool2d(fused, (1, 1)), 1)


class Projector(nn.Module):
    """``projector.model``: Conv1x1(F -> D, no bias), BN(D), ReLU, Conv1x1(D -> D)."""

    def __init__(self, in_dim: int, out_dim: int = JOINT_FEATURE_SIZE) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Conv2d(in_dim, out_dim, 1, bias=False), nn.BatchNorm2d(out_dim),
                                   nn.ReLU(inplace=True), nn.Conv2d(out_dim, out_dim, 1, bias=True))

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class ImageModel(nn.Module):
    """BioViL's (``multi_image=False``) or BioViL-T's image model; the released ``.pt`` is its state dict."""

    def __init__(self, arch: str = "resnet50", joint_feature_size: int = JOINT_FEATURE_SIZE,
                 multi_image: bool = False) -> None:
        super().__init__()
        self.arch, self.multi_image = arch, multi_image
        self.encoder = MultiImageEncoder(arch) if multi_image else ImageEncoder(arch)
        self.projector = Projector(self.encoder.feature_size, joint_feature_size)
        self.joint_feature_size = joint_feature_size

    def forward(self, x: Tensor, previous: Tensor | None = None) -> dict[str, Tensor]:
        """``patch_embeddings`` (B F h w), ``img_embedding`` (B F), ``projected_patch_embeddings`` (B D h w),
        ``projected_global_embedding`` (B D, the mean of the projected patches)."""
        if previous is not None and not self.multi_image:
            raise ValueError("a prior image needs the BioViL-T (multi-image) encoder")
        patch, pooled = self.encoder(x, previous) if previous is not None else self.encoder(x)
        projected = self.projector(patch)
        return {"patch_embeddings": patch, "img_embedding": pooled, "projected_patch_embeddings": projected,
                "projected_global_embedding": projected.mean(dim=(2, 3))}

    @torch.no_grad()
    def patchwise_projected(self, x: Tensor, normalize: bool = True) -> Tensor:
        """B x h x w x D projected patch embeddings (L2-normalised over D when ``normalize``)."""
        projected = self(x)["projected_patch_embeddings"]
        if normalize:
            projected = F.normalize(projected, dim=1)
        return projected.permute(0, 2, 3, 1)

    @torch.no_grad()
    def global_embedding(self, x: Tensor) -> Tensor:
        """B x D L2-normalised global embeddings (the zero-shot image side)."""
        return F.normalize(self(x)["projected_global_embedding"], dim=-1)


def image_config_from_state(state: Mapping[str, Tensor]) -> dict:
    """``arch``, ``joint_feature_size`` and ``multi_image`` of an image state dict in the released layout."""
    if not any(k.startswith("encoder.encoder.") for k in state):
        raise ValueError("the image weights have no encoder.encoder.* keys: not a BioViL image model "
                         "(its released file is the ImageModel state dict: encoder.encoder.*, projector.model.*)")
    joint = JOINT_FEATURE_SIZE  # a damaged projector is left for the strict diff to report
    for key in ("projector.model.3.weight", "projector.model.0.weight", "projector.model.1.weight"):
        if key in state:
            joint = int(state[key].shape[0])
            break
    multi = any(k.startswith(("encoder.backbone_to_vit.", "encoder.vit_pooler.", "encoder.missing_previous_emb"))
                for k in state)
    return {"arch": resnet_arch(state), "joint_feature_size": joint, "multi_image": multi}


def image_model_from_state(state: Mapping[str, Tensor], what: str = "image weights", meta: bool = False,
                           config: Mapping | None = None) -> ImageModel:
    """An eval-mode :class:`ImageModel` loaded strictly, of ``config`` (``arch``, ``joint_feature_size``,
    ``multi_image``: a known release) or of the architecture the state dict describes.
    ``meta=True`` builds it on the meta device and assigns the given tensors (key-manifest checks)."""
    from baselines.state_dict import load_strict, strip_prefixes, unwrap

    state = strip_prefixes(unwrap(state))
    config = dict(config) if config is not None else image_config_from_state(state)
    if meta:
        with torch.device("meta"):
            model = ImageModel(**config)
    else:
        model = ImageModel(**config)
    load_strict(model, state, source=what, assign=meta)
    return model.eval()


# ---------------------------------------------------------------------------------------------- preprocessing
def remap_to_uint8(array: np.ndarray) -> np.ndarray:
    """Min-max to [0, 255] in float64, then ``astype(uint8)`` (truncation), as ``load_image`` does."""
    array = np.asarray(array).astype(float)
    array -= array.min()
    array /= array.max()
    array *= 255
    return array.astype(np.uint8)


def load_array(pixels: np.ndarray):
    """A decoded image (any numeric H x W array) -> the PIL mode-``L`` image the published ``load_image`` gives."""
    from PIL import Image

    return Image.fromarray(remap_to_uint8(pixels)).convert("L")


def load_image_file(path) -> "object":
    """``load_image``: PNG / JPEG through PIL as decoded arrays, DICOM ``pixel_array`` (no rescale, VOI LUT or
    MONOCHROME1 inversion, as published); then :func:`load_array`."""
    from pathlib import Path

    from PIL import Image

    path = Path(path)
    if path.suffix.lower() in (".png", ".jpg", ".jpeg"):
        with Image.open(path) as img:
            pixels = np.asarray(img)
    elif path.suffix.lower() == ".dcm":
        import pydicom

        pixels = pydicom.dcmread(path).pixel_array
    else:
        raise ValueError(f"{path}: image type not supported (png, jpg, jpeg, dcm)")
    return load_array(pixels)


def chest_xray_transform(image, resize: int = RESIZE, crop: int = CROP_BIOVIL) -> Tensor:
    """PIL ``Resize(resize)`` (shorter side, bilinear), ``CenterCrop(crop)``, ``ToTensor``, 3 equal channels."""
    from torchvision.transforms import functional as TF

    image = TF.center_crop(TF.resize(image, resize), crop)
    tensor = TF.to_tensor(image)
    return tensor.repeat(3, 1, 1) if tensor.shape[0] == 1 else tensor


def tensor_transform(images: Tensor, resize: int = RESIZE, crop: int = CROP_BIOVIL) -> Tensor:
    """The transform on a batch of [0, 1] tensors (B x C x H x W): shorter side to ``resize`` (bilinear with
    antialiasing, as PIL filters), centre crop ``crop``. Close to, not bytewise equal to, the PIL path."""
    from torchvision.transforms import functional as TF

    h, w = images.shape[-2:]
    if min(h, w) != resize:
        images = TF.resize(images, resize, antialias=True)
    return TF.center_crop(images, crop)


# ---------------------------------------------------------------------------------------------- grounding
def patch_text_similarity(patches: Tensor, text: Tensor) -> Tensor:
    """Cosine of every patch with the text: patches (..., h, w, D) L2-normalised, text (D) -> (..., h, w)."""
    return F.normalize(patches.float(), dim=-1) @ F.normalize(text.float(), dim=-1)


def smooth(similarity: Tensor, sigma: float = GAUSSIAN_SIGMA) -> Tensor:
    """``scipy.ndimage.gaussian_filter(map, sigma=(s, s), order=0)`` on each h x w map (reflect, truncate 4)."""
    from scipy import ndimage

    arr = similarity.detach().cpu().numpy()
    flat = arr.reshape(-1, *arr.shape[-2:])
    out = np.stack([ndimage.gaussian_filter(m, sigma=(sigma, sigma), order=0) for m in flat]) if len(flat) else flat
    return torch.from_numpy(out.reshape(arr.shape))


def similarity_map(patches: Tensor, text: Tensor, sigma: float = GAUSSIAN_SIGMA) -> tuple[Tensor, Tensor]:
    """(raw, smoothed) patch-text similarity maps (..., h, w)."""
    raw = patch_text_similarity(patches, text)
    return raw, smooth(raw, sigma)


def to_image_size(similarity: Tensor, width: int, height: int, resize: int | None = RESIZE,
                  crop: int | None = CROP_BIOVIL, interpolation: str = "nearest") -> Tensor:
    """``convert_similarity_to_image_size``: an h x w map onto the original W x H image.

    With a crop, the map covers the central t x t square, t = int(crop * min(H, W) / resize) (truncated),
    padded with NaN (left / top floor, right / bottom ceil of the margins); linear modes use
    ``align_corners=False``, nearest ``None``. Without a crop, the map is interpolated to H x W.
    """
    grid = similarity.reshape(1, 1, *similarity.shape[-2:]).float()
    align = False if interpolation in ("linear", "bilinear", "bicubic", "trilinear") else None
    if crop is None:
        return F.interpolate(grid, size=(height, width), mode=interpolation, align_corners=align)[0, 0]
    side = int(crop * min(height, width) / resize) if resize is not None else crop
    up = F.interpolate(grid, size=(side, side), mode=interpolation, align_corners=align)
    mw, mh = width - side, height - side
    pad = (math.floor(mw / 2), math.ceil(mw / 2), math.floor(mh / 2), math.ceil(mh / 2))
    return F.pad(up[0, 0], pad, value=float("nan"))


__all__ = ["CROP_BIOVIL", "CROP_BIOVIL_T", "GAUSSIAN_SIGMA", "ImageEncoder", "ImageModel", "MultiImageEncoder",
           "Projector", "RESIZE", "VisionTransformerPooler", "chest_xray_transform", "image_config_from_state",
           "image_model_from_state", "load_array", "load_image_file", "patch_text_similarity", "remap_to_uint8",
           "resnet_arch", "resnet_features", "similarity_map", "sine_position_embedding", "smooth", "tensor_transform",
           "to_image_size"]
