"""Data-parallel fine-tuning under ``torchrun``: the process group, the rank's share, reductions.

``Distributed.from_env()`` reads what torchrun sets (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``,
``TORCHELASTIC_RESTART_COUNT``); launched any other way it is the one-process run and every
method below is a no-op, so the loop has one code path.

How the work is split, and why not ``DistributedSampler``: ``batch_size`` stays the GLOBAL batch.
Each rank draws the same global order from (seed, epoch) (``toolkit.finetune.rng``), cuts the
same global batches as a one-process run and takes its contiguous share of each
(``torch.tensor_split``: sizes differ by at most one). ``DistributedSampler`` would give each
rank every W-th image of the epoch and pad the last batch with repeats, so a 2-process run would
see different batches from a 1-process one; sharding each global batch keeps them equal and
makes the position in the epoch (epoch, batch) the same number on every rank. Each rank's loss
is its mean scaled by ``n_rank * W / n_global``: DDP averages gradients over ranks, so the
average is the gradient of the global batch's mean even when the shares are unequal (a last,
partial batch), where a plain average of per-rank means would weigh images unequally.

``sync_batchnorm`` replaces the training forward of each trainable BatchNorm layer with one whose
statistics are all-reduced (sums, then centred sums of squares, through a differentiable
all-reduce, so the backward pass is synchronised too; ``torch.distributed.nn.functional.all_reduce``
does the same but is deprecated in this torch) on a process group of its own.
``torch.nn.SyncBatchNorm`` runs on GPUs only; this one runs on gloo (CPU) and NCCL alike, and
leaves the modules' classes and state-dict keys as they were.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import inspect
import os
import types
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from toolkit.errors import HardwareUnavailableError, InvalidArgumentError

#: Test hook: rank 1 kills itself with SIGKILL right after this global step, on the first attempt
#: only (``TORCHELASTIC_RESTART_COUNT`` 0). Read only when the variable is set.
KILL_ENV = "REHEAD_TEST_KILL_AT_STEP"


def launched() -> bool:
    """Whether this process was started by torchrun (``torch.distributed.run``)."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_torchelastic_launched()


@dataclasses.dataclass
class Distributed:
    """This process's place in the group: ``rank`` of ``world`` (``local_rank`` on its node).

    ``restart`` is torchrun's restart count (0 on the first attempt): a restarted group resumes
    from the run's newest checkpoint. ``owns_group``: this object started the process group (and
    destroys it in ``close``); a group the caller started is used and left running.
    """

    world: int = 1
    rank: int = 0
    local_rank: int = 0
    restart: int = 0
    owns_group: bool = False
    bn_group: Any = None
    _previous_cuda: int | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> Distributed:
        """The one-process run unless launched by torchrun (or inside a group already started)."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            restart = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
            return cls(dist.get_world_size(), dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0")), restart)
        if not launched():
            return cls()
        return cls(
            world=int(os.environ["WORLD_SIZE"]),
            rank=int(os.environ["RANK"]),
            local_rank=int(os.environ.get("LOCAL_RANK", "0")),
            restart=int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")),
        )

    # --- the group ----------------------------------------------------------------------------
    def device(self, configured: str) -> torch.device:
        """The training device: under torchrun ``cuda`` means this rank's GPU, ``cuda:LOCAL_RANK``.

        Args:
            configured: the device the run was configured with (``cpu``, ``cuda`` or ``cuda:N``).
        """
        if self.world == 1 and not launched():
            return torch.device(configured)
        if configured.startswith("cuda:"):
            raise InvalidArgumentError(
                f"device '{configured}' names one GPU, but under torchrun each rank takes its own",
                hint="pass device 'cuda': rank r trains on cuda:LOCAL_RANK",
                param="device",
            )
        if configured == "cuda":
            if self.local_rank >= torch.cuda.device_count():
                raise HardwareUnavailableError(
                    f"local rank {self.local_rank} needs GPU cuda:{self.local_rank}, this node has "
                    f"{torch.cuda.device_count()}",
                    hint="start at most as many processes per node as it has GPUs (torchrun --nproc-per-node)",
                    param="device",
                )
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")

    def start(self, device: torch.device) -> None:
        """Join the group (gloo on CPU, NCCL on CUDA) unless it is already running.

        Args:
            device: the training device: NCCL for CUDA, gloo otherwise.
        """
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            pass  # the caller's group: used as it is, left running
        elif not launched():
            return
        else:
            timeout = datetime.timedelta(minutes=30)
            extra: dict[str, Any] = {}
            if device.type == "cuda":
                self._previous_cuda = torch.cuda.current_device()
                torch.cuda.set_device(device)
                extra["device_id"] = device
            dist.init_process_group(
                "nccl" if device.type == "cuda" else "gloo",
                store=self._store(timeout),
                rank=self.rank,
                world_size=self.world,
                timeout=timeout,
                **extra,
            )
            self.owns_group = True
        if self.world > 1:
            # BatchNorm statistics on a group of their own: their collectives never interleave with
            # DDP's gradient buckets on the default group
            self.bn_group = dist.new_group(backend="gloo" if device.type == "cpu" else "nccl")

    def _store(self, timeout: datetime.timedelta) -> Any:
        """torchrun's store, its keys prefixed with the restart count.

        The elastic agent keeps one store across restarts and the workers' process-group keys
        (each rank's listening address) outlive the workers that wrote them: a restarted gloo group
        reads the dead rank 0's address and fails to connect (NCCL likewise, pytorch#167288). A
        prefix per attempt gives every attempt its own keys.
        """
        import torch.distributed as dist

        served_by_agent = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
        store = dist.TCPStore(
            os.environ["MASTER_ADDR"],
            int(os.environ["MASTER_PORT"]),
            self.world,
            is_master=not served_by_agent and self.rank == 0,
            timeout=timeout,
            multi_tenant=not served_by_agent,
        )
        return dist.PrefixStore(f"rehead/attempt-{self.restart}", store)

    def close(self) -> None:
        """Leave the group if this object started it; put the current CUDA device back."""
        import torch.distributed as dist

        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
        self.owns_group = False
        self.bn_group = None
        if self._previous_cuda is not None:
            torch.cuda.set_device(self._previous_cuda)
            self._previous_cuda = None

    def barrier(self) -> None:
        import torch.distributed as dist

        if self.world > 1 and dist.is_initialized():
            dist.barrier()

    # --- shares and sums ----------------------------------------------------------------------
    def share(self, items: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous part of ``items`` (sizes differ by at most one).

        Args:
            items: the whole batch (its first axis is cut).
        """
        if self.world == 1:
            return items
        return torch.tensor_split(items, self.world)[self.rank]

    def share_span(self, n: int) -> tuple[int, int]:
        """``[start, stop)`` of this rank's part of ``n`` items, as ``share`` cuts them.

        Args:
            n: how many items.
        """
        base, extra = divmod(n, self.world)
        start = self.rank * base + min(self.rank, extra)
        return start, start + base + (1 if self.rank < extra else 0)

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sums of ``values`` over the ranks (float64: counts stay exact).

        Args:
            values: this rank's values.
        """
        if self.world == 1:
            return list(values)
        import torch.distributed as dist

        t = torch.tensor(list(values), dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(t)
        return [float(v) for v in t.cpu()]

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value`` (picklable), in rank order.

        Args:
            value: this rank's value.
        """
        if self.world == 1:
            return [value]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, value)
        return out

    def broadcast_buffers(self, model: nn.Module) -> None:
        """Rank 0's buffers (BatchNorm running statistics) to every rank: without synchronised
        BatchNorm each rank's statistics follow its own images; rank 0's are the ones saved.

        Args:
            model: the model, the same on every rank.
        """
        if self.world == 1:
            return
        import torch.distributed as dist

        for buffer in model.buffers():
            dist.broadcast(buffer.data, src=0)

    def _comm_device(self) -> torch.device:
        import torch.distributed as dist

        nccl = dist.get_backend() == "nccl"
        return torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")

    # --- wrapping the model for a phase -----------------------------------------------------
    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """``model`` in ``DistributedDataParallel`` for the current phase (its trainable parameters).

        Buffers are not broadcast at every forward (``broadcast_buffers=False``): training-mode
        BatchNorm normalises with batch statistics, so the running ones change nothing until the
        evaluation at the end of the epoch, before which ``broadcast_buffers`` sends rank 0's.

        Args:
            model: the model.
            device: the training device (its index for CUDA ``device_ids``).
        """
        if self.world == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        # torch 2.14 renamed the switch (the old name warns); the weights are the same on every
        # rank at the start, so the new one's sync at construction changes nothing
        renamed = "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
        switch: dict[str, Any] = {"forward_sync_buffers" if renamed else "broadcast_buffers": False}
        return DistributedDataParallel(model, device_ids=ids, **switch)

    @contextlib.contextmanager
    def sync_batchnorm(self, model: nn.Module, enabled: bool) -> Iterator[int]:
        """Inside the block the training-mode BatchNorm layers of ``model`` share statistics across
        ranks (yields how many layers); afterwards their forward is their class's again.

        Args:
            model: the model.
            enabled: share the statistics (False: nothing changes).
        """
        layers = [m for m in model.modules() if isinstance(m, _BatchNorm)] if enabled and self.world > 1 else []
        for layer in layers:
            layer.forward = types.MethodType(_make_sync_forward(self.bn_group), layer)  # type: ignore[method-assign]
        try:
            yield len(layers)
        finally:
            for layer in layers:
                del layer.forward

    # --- test hook ----------------------------------------------------------------------------
    def maybe_die(self, global_step: int) -> None:
        """The elastic test's kill: see ``KILL_ENV``. Does nothing unless that variable is set.

        Args:
            global_step: the step just done.
        """
        at = os.environ.get(KILL_ENV)
        if at and self.rank == 1 and self.restart == 0 and global_step == int(at):
            import signal

            os.kill(os.getpid(), signal.SIGKILL)


class _AllReduce(torch.autograd.Function):
    """Sum over the ranks of ``group``, differentiable: the gradient is summed the same way."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor, group: Any) -> torch.Tensor:
        """Sum ``tensor`` over the ranks of ``group``.

        Args:
            ctx: autograd's context, which keeps ``group`` for the backward pass.
            tensor: this rank's tensor.
            group: the process group (None: the default group).
        """
        import torch.distributed as dist

        ctx.group = group
        out = tensor.clone()
        dist.all_reduce(out, group=group)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        """Sum the gradient over the ranks of the forward's group.

        Args:
            ctx: autograd's context, holding the group.
            grad: this rank's gradient of the output.
        """
        import torch.distributed as dist

        out = grad.contiguous().clone()
        dist.all_reduce(out, group=ctx.group)
        return out, None


def all_reduce(tensor: torch.Tensor, group: Any = None) -> torch.Tensor:
    """Sum ``tensor`` over the ranks of ``group``, differentiably (``_AllReduce``).

    Args:
        tensor: this rank's tensor.
        group: the process group (default None: the default group).
    """
    result: torch.Tensor = _AllReduce.apply(tensor, group)
    return result


def _make_sync_forward(group: Any) -> Any:
    def forward(self: _BatchNorm, x: torch.Tensor) -> torch.Tensor:
        if not self.training:  # eval mode or BatchNorm frozen (toolkit.heads.freeze): running statistics
            return type(self).forward(self, x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        local = x.numel() // x.size(1)
        # statistics in float32 (under fp16 autocast, sums of many halves overflow); sums first,
        # then centred squares: the two-pass variance, as precise as one process's
        xf = x.float()
        totals = all_reduce(torch.cat([xf.sum(dims), xf.new_tensor([local])]), group=group)
        count = float(totals[-1].detach())
        mean = totals[:-1] / count
        centred = xf - mean.view(shape)
        var = all_reduce((centred * centred).sum(dims), group=group) / count
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.weight is not None and self.bias is not None:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                tracked = self.num_batches_tracked
                if tracked is not None:
                    tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(tracked if tracked is not None else 1)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                unbiased = var.detach() * (count / max(count - 1.0, 1.0))
                self.running_var.mul_(1 - m).add_(unbiased, alpha=m)
        return y.to(x.dtype)

    return forward


__all__ = ["KILL_ENV", "Distributed", "launched"]
