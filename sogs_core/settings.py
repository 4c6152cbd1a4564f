"""Every setting that changes the output bytes, in one place: the settings hash of the backfill
(`CompressSettings.digest`, plus `StreamedSettings` for streamed scenes) covers exactly these.

No torch at import time: the command line reads the choices from here and its --help stays quick.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Optional

from sogs_core import __version__

if TYPE_CHECKING:
    import torch

#: what `--order` accepts; the first is the default
ORDER_METHODS = ("chain", "hilbert", "morton", "plas", "input")


#: chunk groups of a streamed SOG whose levels one call makes on a GPU (`chunk.build_levels_batch`);
#: a CPU makes them one group at a time (its merge is bound by arithmetic, not by launches)
GROUPS_PER_DECIMATION_CUDA = 8

#: the smallest scene that `--processes auto` writes with several processes on a CPU
#: (`streamed.processes.auto_processes`): each process pays its start (spawning, importing torch:
#: seconds), which a scene of millions of splats (several CPU seconds a million) repays
AUTO_PROCESSES_MIN_SPLATS = 2_000_000
#: on a GPU, the smallest scene that `--processes auto` writes with several processes, and the
#: least device memory for them: one process is bound by launching kernels, and three capped
#: ones repay their start from about 8M splats (bench/NOTES.md, sessions 34 and 39)
AUTO_GPU_SHARED_MIN_SPLATS = 8_000_000
AUTO_GPU_SHARED_MIN_MEMORY = 24 << 30
#: how many processes `--processes auto` takes on such a GPU: three, each with its caching
#: allocator capped at PROCESS_GPU_MEMORY_MIB, are faster than two uncapped ones in less memory
#: (bench/NOTES.md, session 39)
AUTO_GPU_PROCESSES = 3
#: MiB of device memory each of several processes writing one streamed SOG on a GPU may hold
#: in torch's caching allocator (`torch.cuda.set_per_process_memory_fraction`): without a cap
#: each keeps what its largest call ever took, and three went over the memory two took. A
#: process's chunk groups, not the scene, bound what it needs; its CUDA context and kernels come
#: on top
PROCESS_GPU_MEMORY_MIB = 2800
#: whether the calling process also writes a run of a streamed SOG beside its writing
#: processes on a GPU (`write_streamed(write_here=)`): its compressor is warm while a fresh
#: process spends ~5 s on its first chunk group (bench/NOTES.md, session 40). Off: measured on
#: an H100 it finished the first groups earlier, not the write, and added a fourth writer's
#: device memory (session 41)
WRITE_HERE_ON_GPU = False
#: whether several processes writing one streamed SOG on a GPU share it through a private CUDA
#: MPS server where the machine has its control program (`streamed.mps`): their kernels run
#: side by side instead of the device switching between their contexts (bench/NOTES.md,
#: session 42)
MPS_FOR_GPU_PROCESSES = True


@dataclass(frozen=True)
class ChainConfig:
    """Settings of the chained order (part of the settings hash through CompressSettings)."""

    chunk: int = 0                 # splats re-chained together; 0: chain.CHUNK_CUDA on a CUDA
                                   # device, chain.CHUNK_CPU on a CPU (time grows with it)
    means_u_weight: float = 3.0    # cost of a change in the high position bytes vs other bytes
    choose: bool = True            # also try the y-first Morton order (and the input order where it
                                   # is as local as a curve), and write whichever encodes smallest
                                   # on a sample of the image rows


@dataclass(frozen=True)
class PlasConfig:
    """Schedule of the sort. Defaults follow the reference where it has one."""

    radius_decay: float = 0.95          # blur radius multiplier per level (reference 0.95)
    min_blur_radius: float = 1.0        # last level's radius (reference 1)
    min_block_size: int = 4             # groups are drawn inside blocks of at least this side
                                        # (reference 16; 4 keeps the last levels local)
    block_factor: float = 1.0           # block side = block_factor * (2r + 2) (reference 1)
    max_block_size: int = 0             # and at most this (0: the grid)
    improvement_break: float = 1e-4     # leave a config when a step gains less than this (reference
                                        # 1e-5; PlayCanvas sogs calls it with 1e-4)
    fine_radius: int = 8                # levels with a radius below this use fine_break instead:
    fine_break: float = 2e-6            # the fine levels decide the neighbour distance
    mid_radius: int = 32                # levels with fine_radius <= radius < mid_radius use mid_break
    mid_break: float = 3e-5
    coarse_radius: int = 32             # while the radius is >= this, it shrinks by coarse_decay:
    coarse_decay: float = 0.9           # more effort there does not lower the final distance
    min_configs: int = 4                # block placements per level before a level may end (reference 4)
    max_configs: int = 16               # ... and at most this many (the reference has no cap)
    max_iters: int = 256                # steps per config, a hard cap so a config can never spin
    init: str = "pca"                   # first layout: "random" (reference) or "pca" (rows by the
                                        # first principal component, columns by the second): lower
                                        # nd in fewer steps (bench/NOTES.md)
    start_radius: int = 0               # first level's radius (0: side/2 - 1, the reference)
    store_fp16: bool = True             # keep grid and target as float16 (half the bytes per step;
                                        # distances are float32; nd unchanged in bench/NOTES.md)

    @classmethod
    def fast(cls) -> "PlasConfig":
        """A short schedule for CPUs, where a step costs milliseconds: fewer levels, looser breaks
        (bench/NOTES.md compares it with the default)."""
        return cls(radius_decay=0.8, improvement_break=1e-3, fine_break=1e-4, mid_break=3e-4,
                   coarse_decay=0.8, max_configs=8)

    @classmethod
    def reference(cls) -> "PlasConfig":
        """The reference's schedule (fraunhoferhhi/PLAS defaults), for comparisons."""
        return cls(min_block_size=16, improvement_break=1e-5, fine_radius=0, mid_radius=0,
                   coarse_radius=0, store_fp16=False, init="random")


#: what `--plas` accepts: full (the default schedule), fast (PlasConfig.fast), auto (fast on a CPU)
PLAS_SCHEDULES = ("auto", "full", "fast")


def plas_schedule(name: str, on_gpu: bool) -> PlasConfig:
    """The PlasConfig a `--plas` choice names; auto is full on a GPU, fast on a CPU."""
    if name not in PLAS_SCHEDULES:
        raise ValueError(f"unknown PLAS schedule {name!r} ({', '.join(PLAS_SCHEDULES)})")
    if name == "auto":
        name = "full" if on_gpu else "fast"
    return PlasConfig() if name == "full" else PlasConfig.fast()


@dataclass(frozen=True)
class Vp8lSettings:
    """Effort knobs: `predictor_bits`/`group_bits` are log2 of the predictor and entropy tile
    sides (2..9), `max_groups` caps the prefix-code groups, `copies` turns LZ77 runs on,
    `cache_bits` are the colour cache sizes tried (0: none; the smallest estimate wins).
    Defaults from bench/vp8l_bench.py (bench/NOTES.md): 8 groups are nearly as small as 64 and
    faster; 16-texel predictor tiles beat 32; a cache pays on means_u only."""
    predictor_bits: int = 4
    group_bits: int = 5
    max_groups: int = 8
    copies: bool = True
    mode_rounds: int = 2
    cache_bits: tuple[int, ...] = (0, 10)
    #: False: no predictor transform, the texels coded as they are. For the SH labels,
    #: numbered along the order so that raw values are concentrated within a block but not
    #: over the image: the prefix-code groups then hold the local statistics, and raw labels
    #: beat the best predictor per tile (WebpSettings.vp8l_overrides)
    predictor: bool = True


@dataclass(frozen=True)
class WebpSettings:
    """The WebP encoding: libwebp's lossless effort (`method` 0 (fast) .. 6 (small), `quality`
    0..100, effort too) per image, and which images our own encoder writes.

    Method 1 is the knee of bench/webp_bench.py's size-vs-time table. The quality is chosen per
    image on the real scenes (bench/NOTES.md): below 25 libwebp skips its cost-based re-parse of
    the LZ77 matches, which the near-incompressible images (means_l, quats, scales) do not pay
    for; sh0 and the SH labels keep 25; means_u and the palette pay for 50, except that along the
    chained order means_u comes out smaller at 25 (`chained_overrides`, which `for_order` puts
    first when the order written is the chained one)."""

    method: int = 1
    quality: int = 24
    quality_overrides: tuple[tuple[str, int], ...] = (
        ("means_u.webp", 50), ("shN_centroids.webp", 50), ("sh0.webp", 25), ("shN_labels.webp", 25))
    chained_overrides: tuple[tuple[str, int], ...] = (("means_u.webp", 25),)
    #: "auto": on a CUDA device, our own encoder (sogs_core.webp.vp8l) for an image of at
    #: least the texels `own_from_texels` gives its name (`device_min_texels` for the others),
    #: libwebp otherwise and on a CPU; "libwebp"; "own": ours for every image, on the device
    #: given or the CPU. Per image and size because libwebp encodes one image per call on one
    #: CPU thread while ours runs on the GPU beside the other work, and the bytes of the two
    #: differ per image and size (bench/NOTES.md has the table behind these thresholds).
    encoder: str = "auto"
    own_from_texels: tuple[tuple[str, int], ...] = (
        ("shN_labels.webp", 0), ("sh0.webp", 500_000), ("shN_centroids.webp", 750_000),
        ("means_u.webp", 2_000_000), ("means_l.webp", 2_000_000))
    device_min_texels: int = 6_000_000
    #: our encoder's settings per image (the rest take the defaults): the SH labels go without
    #: the predictor, with up to 16 code groups (raw labels beat the best predictor per tile
    #: under local statistics, at a fraction of its time)
    vp8l_overrides: tuple[tuple[str, Vp8lSettings], ...] = (
        ("shN_labels.webp", Vp8lSettings(predictor=False, max_groups=16)),)

    def own_encoder_for(self, texels: int, device: Optional[torch.device], name: str = "") -> Optional[torch.device]:
        """The device our encoder should run on for the image `name` of `texels`, or None for libwebp."""
        if self.encoder == "own":
            import torch

            return device if device is not None else torch.device("cpu")
        if self.encoder == "auto" and device is not None and device.type == "cuda" \
                and texels >= _for_image(self.own_from_texels, name, self.device_min_texels):
            return device
        if self.encoder not in ("auto", "own", "libwebp"):
            raise ValueError(f"unknown WebP encoder {self.encoder!r} (auto, own or libwebp)")
        return None

    def quality_for(self, name: str) -> int:
        """libwebp's quality for the image `name` (a file name, or a key ending in one)."""
        return _for_image(self.quality_overrides, name, self.quality)

    def vp8l_for(self, name: str) -> Vp8lSettings:
        """Our encoder's settings for the image `name` (a file name, or a key ending in one)."""
        return _for_image(self.vp8l_overrides, name, Vp8lSettings())

    def for_order(self, chained: bool) -> "WebpSettings":
        """These settings for images laid out in the chained order (`chained`) or another one."""
        if not chained:
            return self
        return replace(self, quality_overrides=self.chained_overrides + self.quality_overrides)


def _for_image(overrides: tuple, name: str, default):
    """The value of the first (image, value) override whose image `name` ends in, else `default`."""
    return next((value for image, value in overrides if name.endswith(image)), default)


#: the `--quality` that `compress` and the backfill use unless told otherwise (chosen by render
#: PSNR and bytes beside splat-transform on the shared scenes; README "Quality levels"); what
#: each level trades is `quantize.quality`'s. The library's own default (`CompressSettings`) is
#: 100, the format's tightest contract, which the conformance tests hold it to.
DEFAULT_QUALITY = 80


#: what `--invalid` accepts: fail (a scene with a NaN, a stray inf or a zero-length rotation is
#: refused whole, the default) or drop (those splats are removed and counted)
INVALID_POLICIES = ("fail", "drop")


@dataclass(frozen=True)
class EditSettings:
    """What is done to a scene before it is compressed (`sogs_core.edit`), always in this order:
    invalid splats dropped, the transform (rotate, then scale, then translate: splat-transform's
    `-r R -s S -t T`), the box and sphere filters, the opacity filter, the splat budget.
    Coordinates, angles and boxes are those of the PlayCanvas engine's frame, as splat-transform
    takes them (a PLY's x and y negated)."""

    invalid: str = "fail"
    rotate: Optional[tuple[float, float, float]] = None       # Euler degrees about x, y, z (R = Rz Ry Rx)
    scale: Optional[float] = None                             # uniform, > 0
    translate: Optional[tuple[float, float, float]] = None
    filter_box: Optional[tuple[float, ...]] = None            # x, y, z, X, Y, Z (inclusive; +-inf allowed)
    filter_sphere: Optional[tuple[float, float, float, float]] = None   # centre and radius (strictly inside)
    min_opacity: Optional[float] = None                       # keep sigmoid(opacity) >= this
    max_splats: Optional[int] = None                          # keep at most this many (merging) ...
    max_splats_fraction: Optional[float] = None               # ... or this fraction of what is left

    def __post_init__(self) -> None:
        if self.invalid not in INVALID_POLICIES:
            raise ValueError(f"--invalid must be one of {', '.join(INVALID_POLICIES)}, not {self.invalid!r}")
        if self.scale is not None and not (self.scale > 0 and self.scale < float("inf")):
            raise ValueError(f"--scale must be a finite number > 0, not {self.scale}")
        if self.filter_sphere is not None and not self.filter_sphere[3] > 0:
            raise ValueError(f"--filter-sphere's radius must be > 0, not {self.filter_sphere[3]}")
        if self.min_opacity is not None and not 0 <= self.min_opacity <= 1:
            raise ValueError(f"--min-opacity must be 0..1, not {self.min_opacity}")
        if self.max_splats is not None and self.max_splats < 1:
            raise ValueError(f"--max-splats must be >= 1, not {self.max_splats}")
        if self.max_splats_fraction is not None and not 0 < self.max_splats_fraction <= 1:
            raise ValueError(f"--max-splats must be a percentage in (0, 100], not {self.max_splats_fraction * 100:g}%")
        if self.max_splats is not None and self.max_splats_fraction is not None:
            raise ValueError("give --max-splats as a count or as a percentage, not both")

    @property
    def identity(self) -> bool:
        """True when nothing would change any scene (and the settings hash leaves the edits out)."""
        return self == EditSettings()

    @property
    def changes_splats(self) -> bool:
        """True when the splats may differ from what was read (a SOG input's codes are then not kept)."""
        return replace(self, invalid="fail") != EditSettings()

    def summary(self) -> str:
        """The edits in `--option value` form, one string for the manifest and the --json result."""
        def fmt(v) -> str:
            return ",".join(f"{x:g}" for x in v) if isinstance(v, tuple) else f"{v:g}"
        parts = [] if self.invalid == "fail" else [f"--invalid {self.invalid}"]
        for name in ("rotate", "scale", "translate", "filter_box", "filter_sphere", "min_opacity", "max_splats"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"--{name.replace('_', '-')} {fmt(value)}")
        if self.max_splats_fraction is not None:
            parts.append(f"--max-splats {self.max_splats_fraction * 100:g}%")
        return " ".join(parts)


@dataclass
class CompressSettings:
    """Everything that changes the output bytes; hashed into the manifest's settings_hash."""

    sh_bands: Optional[int] = None      # drop SH bands above this (None: keep all)
    seed: int = 0
    kmeans_iterations: int = 10
    order: str = "chain"                # one of ORDER_METHODS ("input": keep the input order)
    plas: PlasConfig = field(default_factory=PlasConfig)      # used by order "plas"
    chain: ChainConfig = field(default_factory=ChainConfig)   # used by order "chain"
    requantize: bool = False            # SOG v2 inputs: quantize again instead of keeping their codes
    webp: WebpSettings = field(default_factory=WebpSettings)
    quality: int = 100                  # 0..100 (the tools default to DEFAULT_QUALITY): 100 nearest codes; lower: quantize.quality's levers
    edit: EditSettings = field(default_factory=EditSettings)   # what is done to the scene first

    def __post_init__(self) -> None:
        if self.order not in ORDER_METHODS:
            raise ValueError(f"unknown order {self.order!r} ({', '.join(ORDER_METHODS)})")
        if not 0 <= self.quality <= 100:
            raise ValueError(f"--quality must be 0..100, not {self.quality}")

    def digest(self) -> str:
        """Hash of what changes the bytes: the schedule of an order that is not used is left out."""
        fields = asdict(self)
        if self.order != "plas":
            fields.pop("plas")
        if self.order != "chain":
            fields.pop("chain")
        if not self.requantize:
            fields.pop("requantize")        # the default leaves the hash of earlier runs as it was
        if self.quality == 100:
            fields.pop("quality")           # likewise
        if self.edit.identity:
            fields.pop("edit")              # likewise
        blob = json.dumps({"v": __version__, **fields}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class ChunkOptions:
    """How a streamed SOG is cut (`compress --chunk-count/--chunk-extent/--chunk-min`)."""

    chunk_count: int = 512 * 1024      # splats per leaf and per file, at most (level 0)
    chunk_extent: float = 16.0         # world units: wider leaves are split ...
    chunk_min: int = 8 * 1024          # ... while they hold more than this many splats

    def __post_init__(self) -> None:
        if self.chunk_count < 1 or self.chunk_min < 1 or not self.chunk_extent > 0:
            raise ValueError("chunk count and minimum must be >= 1 and the extent > 0")


@dataclass
class StreamedSettings:
    """What shapes a streamed SOG besides the per-SOG settings (part of the settings hash)."""

    levels: int = 4                    # levels of detail made by decimation (with one input)
    chunks: ChunkOptions = field(default_factory=ChunkOptions)

    def __post_init__(self) -> None:
        if not 1 <= self.levels <= 12:
            raise ValueError(f"--lod-levels must be 1..12, not {self.levels}")

    def as_dict(self) -> dict:
        return asdict(self)
