"""The processes of one extraction: a world of one, or the ranks of a torchrun job.

Under ``torchrun`` each process reads ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``, joins the
default process group (gloo on CPU, NCCL on GPUs) through torchrun's rendezvous
(``MASTER_ADDR`` / ``MASTER_PORT``), and shares small facts with the others through the job's
key-value store (a ``torch.distributed.TCPStore`` client): rows done per backbone, for rank 0's
progress display; which rank failed and why, so that the others stop at their next batch; and who
has finished. A plain process is a :class:`World` of one, whose collectives return their input.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import torch

from embedstore import errors
from embedstore.devices import resolve_device
from embedstore.errors import EmbedstoreError, RankFailedError
from embedstore.extraction._check import is_main_process

__all__ = ["World", "join_world", "is_main_process"]

T = TypeVar("T")
_TIMEOUT = timedelta(minutes=30)
_ALL_RANKS = "_embedstore_on_all_ranks"  # set on an error every rank raises (nobody to tell)


def _rebuild(rank: int, kind: str, message: str) -> EmbedstoreError:
    """Another rank's error, as the same EmbedstoreError class, naming the rank."""
    cls = getattr(errors, kind, None)
    if not (isinstance(cls, type) and issubclass(cls, EmbedstoreError)):
        cls = RankFailedError
    return cls(f"rank {rank}: {message}")


def _on_all_ranks(exc: BaseException) -> BaseException:
    with contextlib.suppress(AttributeError):  # some builtin exceptions take no attributes
        setattr(exc, _ALL_RANKS, True)
    return exc


class World:
    """A world of one process: rank 0 of 1; collectives return their input."""

    rank = 0
    size = 1
    local_rank = 0

    def __init__(self, run_id: str | None = None) -> None:
        self.run_id = run_id
        self._counters: dict[str, int] = {}

    # -- collectives (every rank calls them in the same order)
    def broadcast(self, obj: T) -> T:
        """Rank 0's ``obj`` on every rank."""
        return obj

    def gather(self, obj: T) -> list[T]:
        """Every rank's ``obj``, in rank order, on every rank."""
        return [obj]

    def barrier(self) -> None:
        """Wait until every rank got here."""

    def close(self) -> None:
        """Leave the process group."""

    # -- the job's key-value store (any rank, any time)
    def add(self, key: str, n: int) -> int:
        """Add ``n`` to a counter shared by all ranks; return its new value."""
        self._counters[key] = self._counters.get(key, 0) + n
        return self._counters[key]

    def post_failure(self, text: str) -> None:
        """Tell every rank that this one failed, and why."""

    def failure(self) -> str | None:
        """What another rank posted with :meth:`post_failure`, or None."""
        return None

    # -- built on the above
    def check(self) -> None:
        """Raise RankFailedError if another rank has failed (called after every batch)."""
        text = self.failure()
        if text is not None:
            self.add("stopped", 1)
            raise RankFailedError(
                f"{text}; so rank {self.rank} stopped too. Every chunk already written is kept: "
                "run the same command again (with any number of processes) to resume"
            )

    def fail(self, exc: BaseException) -> None:
        """This rank is stopping on ``exc``: post it for the other ranks (unless every rank
        raises it anyway, or another rank failed first) and give them time to stop."""
        if self.size == 1 or getattr(exc, _ALL_RANKS, False):
            return
        try:
            if self.failure() is None:
                self.post_failure(f"{type(exc).__name__}: {exc}")
                self.wait_for_acks()
        except Exception:  # the job's store is gone: torchrun is tearing the job down
            pass

    def from_root(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on rank 0 only and hand its value (or its error) to every rank."""
        if self.rank != 0:
            payload: Any = self.broadcast(None)  # rank 0's ("ok", value) or ("error", kind, why)
            if payload[0] == "error":
                raise _on_all_ranks(_rebuild(0, payload[1], payload[2]))
            return payload[1]
        try:
            value = fn()
        except BaseException as exc:
            ours = isinstance(exc, EmbedstoreError)
            kind = type(exc).__name__ if ours else "RankFailedError"
            self.broadcast(("error", kind, f"{exc}" if ours else f"{type(exc).__name__}: {exc}"))
            _on_all_ranks(exc)
            raise
        self.broadcast(("ok", value))
        return value

    def agree(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on every rank; if it fails anywhere, every rank raises that error."""
        error: BaseException | None = None
        try:
            value = fn()
        except BaseException as exc:
            error = exc
        mine = None if error is None else (type(error).__name__, f"{error}")
        everyone = self.gather(mine)  # every rank takes part, failed or not
        if error is not None:
            raise _on_all_ranks(error)
        for rank, theirs in enumerate(everyone):
            if theirs is not None:
                raise _on_all_ranks(_rebuild(rank, *theirs))
        return value

    def wait_for_others(self, tick: Callable[[], None], step: str) -> None:
        """Say this rank finished ``step``; call ``tick`` until every rank did, or one failed."""
        self.add(f"finished/{step}", 1)
        while self.add(f"finished/{step}", 0) < self.size:
            self.check()
            tick()
            time.sleep(0.1)

    def wait_for_acks(self, seconds: float = 10.0) -> None:
        """After posting a failure: give the other ranks time to stop and say so."""
        deadline = time.monotonic() + seconds
        while self.size > 1 and self.add("stopped", 0) < self.size - 1:
            if time.monotonic() > deadline:
                return
            time.sleep(0.1)


class TorchrunWorld(World):
    """The ranks of a torchrun job, joined through its rendezvous."""

    def __init__(self, device: torch.device, run_id: str | None) -> None:
        import torch.distributed as dist

        env = os.environ
        super().__init__(run_id=run_id)
        self.rank, self.size = int(env["RANK"]), int(env["WORLD_SIZE"])
        self.local_rank = int(env.get("LOCAL_RANK", "0"))
        self._dist = dist
        try:
            dist.init_process_group(
                "nccl" if device.type == "cuda" else "gloo",
                init_method="env://",
                rank=self.rank,
                world_size=self.size,
                timeout=_TIMEOUT,
            )
            tcp = dist.TCPStore(
                env["MASTER_ADDR"], int(env["MASTER_PORT"]), is_master=False, timeout=_TIMEOUT
            )
        except Exception as exc:  # rendezvous errors come in many types
            raise RankFailedError(
                f"rank {self.rank} could not join the torchrun job at "
                f"{env.get('MASTER_ADDR')}:{env.get('MASTER_PORT')}: {type(exc).__name__}: {exc}"
            ) from None
        prefix = f"embedstore/{self.run_id or env['MASTER_PORT']}/"
        self._kv = dist.PrefixStore(prefix, tcp)

    def _collective(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except RuntimeError as exc:  # a peer died (its socket closed) or timed out
            raise RankFailedError(
                f"rank {self.rank} lost contact with the other ranks ({exc}); another rank "
                "probably died. Every chunk already written is kept: run the same command again "
                "to resume"
            ) from None

    def broadcast(self, obj: T) -> T:
        box = [obj]
        self._collective(lambda: self._dist.broadcast_object_list(box, src=0))
        return box[0]

    def gather(self, obj: T) -> list[T]:
        out: list[Any] = [None] * self.size
        self._collective(lambda: self._dist.all_gather_object(out, obj))
        return out

    def barrier(self) -> None:
        self._collective(self._dist.barrier)

    def close(self) -> None:
        if self._dist.is_initialized():
            self._dist.destroy_process_group()

    def add(self, key: str, n: int) -> int:
        return int(self._kv.add(key, n))

    def post_failure(self, text: str) -> None:
        self._kv.compare_set("failed", "", f"rank {self.rank} failed: {text}")

    def failure(self) -> str | None:
        if not self._kv.check(["failed"]):
            return None
        return self._kv.get("failed").decode()


def join_world(device: str) -> tuple[World, torch.device]:
    """This process's world (torchrun's, from its environment, or one of its own) and device."""
    env = os.environ
    in_torchrun = all(k in env for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))
    run_id = env.get("TORCHELASTIC_RUN_ID")
    run_id = (
        None if run_id in (None, "", "none") else run_id
    )  # torchrun's default without --rdzv-id
    # 'auto' / 'cuda': this rank's GPU, cuda:LOCAL_RANK (one process alone: cuda:0)
    dev = torch.device(resolve_device(device, local_rank=int(env.get("LOCAL_RANK", "0"))))
    if not in_torchrun or int(env["WORLD_SIZE"]) == 1:
        return World(run_id=run_id), dev
    if dev.type == "cuda":
        torch.cuda.set_device(dev)  # GPU only
    return TorchrunWorld(dev, run_id), dev
