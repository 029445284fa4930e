"""The cloud baseline of ``edgekit compare``: the original FP32 model, run the way a server would run it.

Two kinds, one result shape (the ``cloud`` section of ``docs/report-schema.md``):

- ``local`` (``edgekit.cloud.local``): this host, the best way it has (ONNX Runtime on every core, or a GPU);
- a URL (``edgekit.cloud.kserve``): any Open Inference Protocol (KServe v2 REST) server, measured over the
  network, with the server's own compute time where it reports one.
"""

from __future__ import annotations

from .base import CHECK_SAMPLES, CloudError, CloudModelMismatch, Reference, reference_model

__all__ = ["CHECK_SAMPLES", "CloudError", "CloudModelMismatch", "Reference", "open_cloud", "reference_model"]


def open_cloud(cloud: str, reference: Reference, *, model_name: str | None = None, token: str | None = None):
    """The cloud baseline, ready to measure: ``cloud`` = ``local`` or a KServe v2 URL. Everything that can fail
    before a measurement fails here (method chosen and model loaded; server reached and its model's inputs checked
    against the artifact), so ``compare`` stops before it spends minutes on devices. Use it as a context manager;
    ``measure(sample, check, warmup=, runs=, min_seconds=)`` returns the report's ``cloud`` section."""
    if cloud == "local":
        from .local import LocalCloud

        return LocalCloud(reference)
    from .kserve import KServeCloud

    target = KServeCloud(cloud, reference, model_name=model_name, token=token)
    try:
        target.prepare()
    except BaseException:
        target.close()
        raise
    return target
