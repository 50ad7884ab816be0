"""Settings of one service process (built once from the CLI / config and passed to ``create_app``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from inspection.config import AppConfig


@dataclass(frozen=True)
class ServiceSettings:
    """Everything the HTTP service needs to start.

    * ``db_url``: SQLAlchemy URL of the store (``sqlite:////abs/path.db`` or
      ``postgresql+psycopg://user@host:5432/db``); ``images_dir``: the content-addressed image files;
      ``keys_dir``: the Ed25519 evidence keys (``weldinspect keys init``).
    * ``model_dir``: model artifact directory (None = the shipped default model); ``backend``:
      ``auto`` (default: the fastest the artifact ships, see :func:`inspection.pipeline.auto_backend`),
      ``torch``, ``onnx`` (the artifact's ``model.onnx``) or ``onnx-int8`` (``model.int8.onnx``).
    * ``signing_key_id`` / ``signing_station``: which evidence key signs records when the keys
      directory holds several (see :func:`inspection.evidence.keys.load_signer`).
    * ``max_upload_bytes``: largest accepted image upload (bytes); ``max_pixels``: largest image
      (width x height, checked from the header before decoding).
    * ``inference_slots``: how many images are inspected at once (the rest queue; about one per CPU
      core); ``threads``: torch / onnxruntime threads per inference (None = the library default).
    * ``dashboard``: mount the ``/ui`` pages of :mod:`inspection.service.web` (default True; ``/``
      then redirects to ``/ui/``).
    * ``api_docs``: serve ``/docs`` (Swagger UI), ``/redoc`` and ``/openapi.json`` without a key
      (default False: ``/docs`` and ``/redoc`` are off and ``/openapi.json`` needs a key of any role).
    * ``models_root``: the folder that promotion records' model paths are relative to (None = the
      shipped ``models/``); ``follow_promotions``: run the store's current model (its latest signed
      promotion/rollback record) instead of ``model_dir`` when there is one, and switch to a newly
      promoted model without downtime (default True; False pins ``model_dir``);
      ``promotion_poll_s``: seconds between looks at the ledger for a new record (0 = only at start).
      See :mod:`inspection.service.promotion`.
    * ``app_config``: the typed configuration (quality gate, preprocessing, ...).
    """

    db_url: str
    images_dir: Path
    keys_dir: Path
    model_dir: Path | None = None
    backend: str = "auto"
    signing_key_id: str | None = None
    signing_station: str | None = None
    max_upload_bytes: int = 25 * 1024 * 1024
    max_pixels: int = 50_000_000
    inference_slots: int = 2
    threads: int | None = 1
    dashboard: bool = True
    api_docs: bool = False
    models_root: Path | None = None
    follow_promotions: bool = True
    promotion_poll_s: float = 10.0
    app_config: AppConfig = field(default_factory=AppConfig)

    def __post_init__(self) -> None:
        if not self.db_url:
            msg = "db_url must be a database URL, e.g. sqlite:////var/lib/weldinspect/weldinspect.db"
            raise ValueError(msg)
        for name in ("max_upload_bytes", "max_pixels", "inference_slots"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value > 0):
                msg = f"ServiceSettings.{name} must be a positive integer, got {value!r}"
                raise ValueError(msg)
        if self.backend not in ("auto", "torch", "onnx", "onnx-int8"):
            valid = "'auto', 'torch', 'onnx' or 'onnx-int8'"
            msg = f"ServiceSettings.backend must be {valid}, got {self.backend!r}"
            raise ValueError(msg)
        if not (isinstance(self.promotion_poll_s, int | float) and self.promotion_poll_s >= 0):
            msg = f"ServiceSettings.promotion_poll_s must be >= 0 seconds, got {self.promotion_poll_s!r}"
            raise ValueError(msg)
        if self.threads is not None and self.threads < 1:
            msg = f"ServiceSettings.threads must be >= 1 or None, got {self.threads!r}"
            raise ValueError(msg)

    @classmethod
    def from_config(
        cls, config: AppConfig, *, db_url: str | None = None, model_dir: Path | None = None, **kw: object
    ) -> ServiceSettings:
        """Settings from an :class:`AppConfig` (store and service sections), ``db_url`` overriding."""
        store = config.store
        return cls(
            db_url=db_url or store.db_url,
            images_dir=store.images_dir,
            keys_dir=store.keys_dir,
            model_dir=model_dir,
            max_upload_bytes=config.service.max_upload_bytes,
            max_pixels=config.service.max_pixels,
            app_config=config,
            **kw,  # type: ignore[arg-type]
        )


def service_app_config(settings: ServiceSettings) -> AppConfig:
    """``settings.app_config`` with the ingest limits set to the service's upload limits."""
    cfg = settings.app_config
    ingest = cfg.ingest.model_copy(
        update={"max_pixels": settings.max_pixels, "max_bytes": settings.max_upload_bytes}
    )
    return cfg.model_copy(update={"ingest": ingest})
