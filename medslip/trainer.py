"""The pre-training loop: CPU, one CUDA GPU, or several processes under ``torchrun`` (DDP).

- Data order is a seeded permutation per epoch (:class:`~medslip.pretrain.ResumableSampler`) and
  augmentation is seeded per sample, so a resumed run continues exactly where it stopped.
- ``state.pt`` (model, optimizer, RNG states, epoch and batch position, global step; the schedule is a
  function of the step and bf16 needs no gradient scaler) is
  written atomically every ``checkpoint_every`` steps and at each epoch end; it holds only tensors
  and plain containers and is read back with ``weights_only=True``.
- ``metrics.jsonl`` gets one line per ``log_every`` steps (the means over those steps, and ``steps``, their
  count); TensorBoard too when it is installed. ``TrainResult.history`` holds the same entries (rank 0 only),
  so its size is bounded by steps / ``log_every``.
- A NaN or infinite loss stops the run with :class:`NonFiniteLoss`; the last good ``state.pt`` stays.
- On CUDA: bf16 autocast, channels_last, fused AdamW, optional ``torch.compile``, pinned memory.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader

from medslip.atomic import atomic_path
from medslip.pretrain import EpochIndexed, PretrainDataset, ResumableSampler, RunBatchSampler

STATE_FILE = "state.pt"
METRICS_FILE = "metrics.jsonl"


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class TrainConfig:
    epochs: int = 100
    batch_size: int = 64
    lr: float = 1e-4
    weight_decay: float = 0.02
    warmup_epochs: float = 5.0
    warmup_lr: float = 1e-5
    min_lr: float = 1e-5
    num_workers: int = 4
    seed: int = 0
    checkpoint_every: int = 1000
    log_every: int = 50
    max_steps: int | None = None
    compile: bool = False
    grad_clip: float | None = None
    #: the published optimizer factory's parameter groups: no weight decay on biases and 1-D parameters (norms)
    no_decay_1d: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def learning_rate(step: int, steps_per_epoch: int, cfg: TrainConfig) -> float:
    """Linear warm-up from ``warmup_lr`` to ``lr``, then cosine decay to ``min_lr`` (per step)."""
    total = cfg.epochs * steps_per_epoch
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    if step < warmup:
        return cfg.warmup_lr + (cfg.lr - cfg.warmup_lr) * step / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1.0 + math.cos(math.pi * min(1.0, progress)))


class _LossModule(nn.Module):
    """Wraps ``compute_loss`` as ``forward`` so DistributedDataParallel synchronises gradients."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return self.model.compute_loss(batch)


def parameter_groups(model: nn.Module, weight_decay: float, no_decay_1d: bool = True) -> list[dict[str, Any]]:
    """AdamW parameter groups as the published optimizer factory builds them (``Pretrain_MeDSLIP.yaml`` through
    its ``create_optimizer`` with bias/norm filtering): weight decay on weights of two or more dimensions only;
    biases and every 1-D parameter (normalisation scales and shifts) in a group with ``weight_decay = 0``.

    Frozen parameters are left out. ``no_decay_1d=False`` gives one group that decays everything."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if no_decay_1d and (param.ndim <= 1 or name.endswith(".bias")):
            no_decay.append(param)
        else:
            decay.append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def prepare_for_training(model: nn.Module, device: torch.device, lr: float, weight_decay: float,
                         no_decay_1d: bool = True) -> torch.optim.AdamW:
    """Move ``model`` to ``device`` (channels_last on CUDA) and return its AdamW (fused on CUDA) over
    :func:`parameter_groups` (the published groups unless ``no_decay_1d=False``)."""
    cuda = device.type == "cuda"
    model.to(device)
    if cuda:
        model.to(memory_format=torch.channels_last)
    return torch.optim.AdamW(parameter_groups(model, weight_decay, no_decay_1d), lr=lr, weight_decay=weight_decay,
                             **({"fused": True} if cuda else {}))


class TrainStep:
    """One optimizer step exactly as :func:`train` runs it (also what the throughput benchmark times).

    Moves the batch to the device (channels_last on CUDA; cuDNN autotuning and TF32 on), runs the
    loss under bf16 autocast on CUDA (or when ``bf16=True``), back-propagates, clips if asked and steps the optimizer. It
    returns the loss terms as one detached float tensor on the device (averaged over the ranks
    under DDP) and never waits for the device: reading the values is :class:`LossReadout`'s job.
    """

    def __init__(self, module: nn.Module, optimizer: torch.optim.Optimizer, device: torch.device,
                 grad_clip: float | None = None, bf16: bool | None = None, world: int = 1) -> None:
        self.module, self.optimizer, self.device = module, optimizer, device
        self.cuda = device.type == "cuda"
        self.bf16 = self.cuda if bf16 is None else bf16
        self.grad_clip, self.world = grad_clip, world
        self.params = [p for group in optimizer.param_groups for p in group["params"]]
        self.names: list[str] | None = None
        if self.cuda:
            torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick the fastest kernels
            torch.set_float32_matmul_precision("high")  # TF32 for what runs outside the bf16 autocast

    def __call__(self, batch: dict[str, Tensor], lr: float | None = None) -> Tensor:
        if lr is not None:
            for group in self.optimizer.param_groups:
                group["lr"] = lr
        batch = {k: v.to(self.device, non_blocking=self.cuda) for k, v in batch.items()}
        if self.cuda:
            batch["images"] = batch["images"].contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            losses = self.module(batch)
        if self.names is None:
            self.names = list(losses)
        self.optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        self.optimizer.step()
        values = torch.stack([losses[name].detach().float() for name in self.names])
        if self.world > 1:
            dist.all_reduce(values)
            values = values / self.world
        return values


class LossReadout:
    """Reads the loss terms of a step one step late, so the host never stalls the device.

    ``push`` starts an asynchronous copy of a step's values and returns the values of the step
    before (already finished, or nearly: waiting for them leaves the device busy with the step
    just queued). ``flush`` waits for everything pushed; :func:`train` calls it before every
    checkpoint, so a checkpoint is only ever written after its losses were seen to be finite.
    Non-finite values raise :class:`NonFiniteLoss` naming the step that produced them.
    """

    def __init__(self, names_of: Callable[[], list[str]], state_path: Path) -> None:
        self._names_of, self._state_path = names_of, state_path
        self._pending: list[tuple[dict[str, Any], Tensor, Any]] = []

    def push(self, meta: dict[str, Any], values: Tensor) -> list[dict[str, Any]]:
        event = None
        if values.is_cuda:
            # into pinned memory: only then is the device-to-host copy asynchronous
            host = torch.empty(values.shape, dtype=values.dtype, pin_memory=True)
            host.copy_(values, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
        else:
            host = values
        self._pending.append((meta, host, event))
        return self._resolve(keep=1)

    def flush(self) -> list[dict[str, Any]]:
        return self._resolve(keep=0)

    def _resolve(self, keep: int) -> list[dict[str, Any]]:
        done = []
        while len(self._pending) > keep:
            meta, host, event = self._pending.pop(0)
            if event is not None:
                event.synchronize()
            values = dict(zip(self._names_of(), host.tolist()))
            if not all(math.isfinite(v) for v in values.values()):
                self._pending.clear()
                raise NonFiniteLoss(
                    f"loss became {values.get('loss')} at step {meta['step'] - 1} (epoch {meta['epoch']}, batch "
                    f"{meta['batch']}); terms: {values}. The last good checkpoint is kept at "
                    f"{self._state_path if self._state_path.exists() else '(none written yet)'}; "
                    "try a lower learning rate or check the input data."
                )
            done.append({**meta, **values})
        return done


def distributed_context() -> tuple[int, int, int]:
    """(rank, world size, local rank) from the torchrun environment; initialises the process group."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, 0
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank)  # before any collective: NCCL binds to the current device
        dist.init_process_group(backend=backend)
    return dist.get_rank(), world, local_rank


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def parameters_checksum(model: nn.Module) -> float:
    """A float64 sum of every parameter (equal on all ranks after a synchronised step)."""
    return float(sum(p.detach().double().sum().item() for p in model.parameters()))


@dataclass
class TrainResult:
    run_dir: Path
    global_step: int
    epochs_done: int
    last_losses: dict[str, float]
    history: list[dict[str, float]]


def train(
    model: nn.Module,
    dataset: PretrainDataset,
    cfg: TrainConfig,
    run_dir: str | Path,
    resume: bool = False,
    device: str | torch.device | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    on_checkpoint: Callable[[Path], None] | None = None,
) -> TrainResult:
    """Pre-train ``model`` (anything with ``compute_loss(batch) -> dict``) on ``dataset``.

    ``stop_after`` ends the run after that many optimizer steps in this call (as an interruption
    would), having written a checkpoint; ``resume=True`` continues from ``run_dir/state.pt``.
    """
    rank, world, local_rank = distributed_context()
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)  # plain "cuda": each torchrun process takes its own GPU
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.set_device(device)
    run_dir = Path(run_dir)
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed + rank)
    random.seed(cfg.seed + rank)

    optimizer = prepare_for_training(model, device, cfg.lr, cfg.weight_decay, cfg.no_decay_1d)
    sampler = ResumableSampler(len(dataset), cfg.batch_size, cfg.seed, rank, world)
    steps_per_epoch = sampler.batches_per_epoch
    epoch, start_batch, global_step = 0, 0, 0
    state_path = run_dir / STATE_FILE
    if resume:
        if not state_path.exists():
            raise FileNotFoundError(f"cannot resume: {state_path} does not exist")
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        epoch, start_batch, global_step = state["epoch"], state["batch"], state["global_step"]
        if start_batch >= steps_per_epoch:
            epoch, start_batch = epoch + 1, 0
        _set_rng_state(state["rng"][rank] if isinstance(state["rng"], list) else state["rng"])

    module: nn.Module = _LossModule(model)
    if world > 1:
        module = nn.parallel.DistributedDataParallel(module, device_ids=[local_rank] if cuda else None)
    if cfg.compile and cuda:
        module = torch.compile(module)

    total_steps = cfg.epochs * steps_per_epoch
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    writer = _tensorboard(run_dir) if rank == 0 else None
    history: list[dict[str, float]] = []
    last: dict[str, float] = {}
    newest: dict[str, Any] = {}
    steps_this_call = 0

    step = TrainStep(module, optimizer, device, cfg.grad_clip, world=world)
    readout = LossReadout(lambda: step.names or [], state_path)

    # rank 0 keeps one history entry per logging interval (the means of its steps), not one per step: the
    # paper config runs ~576k steps, whose per-step dicts would pile up in memory on every rank
    interval: dict[str, float] = {}
    interval_steps = 0

    def log_interval(final: dict[str, Any]) -> None:
        nonlocal interval_steps
        entry = {"step": final["step"], "epoch": final["epoch"], "lr": final["lr"], "steps": interval_steps,
                 **{k: v / interval_steps for k, v in interval.items()}}
        interval.clear()
        interval_steps = 0
        history.append(entry)
        with open(run_dir / METRICS_FILE, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")
        if writer is not None:
            for key, value in entry.items():
                if key not in ("step", "epoch", "steps"):
                    writer.add_scalar(key, value, entry["step"])

    def report(records: list[dict[str, Any]]) -> None:
        nonlocal last, interval_steps, newest
        for record in records:
            record = {k: v for k, v in record.items() if k != "batch"}
            last = {k: v for k, v in record.items() if k.startswith("loss")}
            if bar is not None:
                bar.update(record["step"], last, record["images_per_s"], record["epoch"])
            if rank != 0:
                continue
            newest = record
            for key, value in record.items():
                if key not in ("step", "epoch", "lr"):
                    interval[key] = interval.get(key, 0.0) + value
            interval_steps += 1
            if record["step"] % cfg.log_every == 0 or record["step"] == total_steps:
                log_interval(record)

    def save_state(epoch_: int, batch_: int) -> None:
        report(readout.flush())  # never checkpoint weights whose losses were not seen to be finite
        rng = _rng_state()
        if world > 1:
            gathered: list[Any] = [None] * world
            dist.all_gather_object(gathered, rng)
            rng = gathered
        if rank == 0:
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch_,
                     "batch": batch_, "global_step": global_step, "rng": rng, "config": asdict(cfg)}
            with atomic_path(state_path) as tmp:
                torch.save(state, tmp)
            if on_checkpoint is not None:
                on_checkpoint(state_path)

    bar = _progress(total_steps, global_step) if (progress and rank == 0) else None
    # One loader for the whole run: its workers persist across epochs (see RunBatchSampler).
    loader = DataLoader(EpochIndexed(dataset), batch_sampler=RunBatchSampler(sampler, cfg.epochs, epoch, start_batch),
                        num_workers=cfg.num_workers, pin_memory=cuda, persistent_workers=cfg.num_workers > 0,
                        # its own generator: creating the iterator must not consume the global RNG
                        # (dropout's), or a resumed run would diverge
                        generator=torch.Generator().manual_seed(cfg.seed + epoch))
    batch_index = start_batch
    try:
        if global_step < total_steps:
            model.train()
            tick = time.perf_counter()
            for batch in loader:
                lr = learning_rate(global_step, steps_per_epoch, cfg)
                values = step(batch, lr)
                global_step += 1
                batch_index += 1
                steps_this_call += 1
                now = time.perf_counter()
                rate = cfg.batch_size * world / max(now - tick, 1e-9)
                tick = now
                report(readout.push({"step": global_step, "epoch": epoch, "batch": batch_index - 1, "lr": lr,
                                     "images_per_s": rate}, values))
                stop = global_step >= total_steps or (stop_after is not None and steps_this_call >= stop_after)
                end_of_epoch = batch_index == steps_per_epoch
                if global_step % cfg.checkpoint_every == 0 or stop or end_of_epoch:
                    save_state(epoch, batch_index)
                if end_of_epoch:
                    epoch, batch_index = epoch + 1, 0
                if stop:
                    break
        if interval_steps:  # the steps of this call after the last full logging interval (an interrupted run)
            log_interval(newest)
    finally:
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.close()
    return TrainResult(run_dir, global_step, epoch, last, history)


def _tensorboard(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard not installed: the JSONL file is the record
        return None
    return SummaryWriter(str(run_dir / "tensorboard"))


class _progress:
    """A rich progress bar showing the loss terms and images/s."""

    def __init__(self, total: int, done: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                                  TimeRemainingColumn(), TextColumn("{task.fields[info]}"))
        self._progress.start()
        self._task = self._progress.add_task("train", total=total, completed=done, info="")

    def update(self, step: int, losses: dict[str, float], rate: float, epoch: int) -> None:
        short = {"loss": "loss", "loss_ce_pathology": "ce_p", "loss_cl_pathology": "cl_p",
                 "loss_ce_anatomy": "ce_a", "loss_cl_anatomy": "cl_a", "loss_ap": "ap"}
        info = " ".join(f"{short.get(k, k)}={v:.3f}" for k, v in losses.items())
        self._progress.update(self._task, completed=step, info=f"ep {epoch} {info} {rate:.1f} img/s")

    def close(self) -> None:
        self._progress.stop()
