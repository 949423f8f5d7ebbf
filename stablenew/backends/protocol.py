"""The one interface every backend kind implements; the pipeline and scheduler know only this."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from stablenew.backends.types import (
    ADetailerJob,
    BackendKind,
    Capabilities,
    Img2ImgJob,
    JobResult,
    ProgressCallback,
    Txt2ImgJob,
    UpscaleJob,
)


@runtime_checkable
class Backend(Protocol):
    """An SD server reached over HTTP. Generation calls return when the job has finished.

    Cancelling: the caller calls `interrupt(task_id)` (which stops only *our* job, never
    someone else's on a shared node) and then may cancel the awaiting task; implementations
    must be safe to cancel at any await. Errors are `stablenew.backends.errors` types.
    """

    url: str
    name: str

    @property
    def kind(self) -> BackendKind: ...

    async def probe(self) -> Capabilities: ...

    async def ping(self) -> None:
        """Cheap health check; raises a BackendError when the node does not answer properly."""
        ...

    async def txt2img(self, job: Txt2ImgJob, on_progress: ProgressCallback | None = None
                      ) -> JobResult: ...

    async def img2img(self, job: Img2ImgJob, on_progress: ProgressCallback | None = None
                      ) -> JobResult: ...

    async def adetailer(self, job: ADetailerJob, on_progress: ProgressCallback | None = None
                        ) -> JobResult: ...

    async def upscale(self, job: UpscaleJob, on_progress: ProgressCallback | None = None
                      ) -> JobResult: ...

    async def interrupt(self, task_id: str) -> None: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class RescansFolders(Protocol):
    """A server that keeps its model folders listed as they were until asked to read them again
    (the A1111 family; ComfyUI reads them afresh at each probe)."""

    async def refresh_lists(self) -> None: ...
