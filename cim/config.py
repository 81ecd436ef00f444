"""Settings read from ``CIM_*`` environment variables (pydantic-settings).

Nothing here is instantiated at import time: the composition roots (``cli``, ``api``) build a
``CimSettings`` and pass it down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_STORAGE_SRID = 4547
"""CGCS2000 / 3-degree Gauss-Kruger CM 114E: the default storage CRS of a new database."""
DEFAULT_IFCZIP_MAX_EXPANDED_BYTES = 2 << 30
"""2 GiB: the largest .ifc an .ifczip may expand to (``CIM_IFCZIP_MAX_EXPANDED_BYTES``)."""


def normalise_database_url(url: str) -> str:
    """Return ``url`` with the psycopg 3 driver that SQLAlchemy needs.

    Examples
    --------
    >>> normalise_database_url("postgresql://u@h/db")
    'postgresql+psycopg://u@h/db'
    >>> normalise_database_url("postgres://u@h/db")
    'postgresql+psycopg://u@h/db'
    """
    for prefix in (
        "postgresql+psycopg2://",
        "postgresql+psycopg://",
        "postgresql://",
        "postgres://",
    ):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError("CIM_DATABASE_URL must be a postgresql:// URL")


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class CimSettings(BaseSettings):
    """Every setting of cim; each field is read from ``CIM_<FIELD>`` (case-insensitive)."""

    model_config = SettingsConfigDict(env_prefix="CIM_", extra="ignore", populate_by_name=True)

    database_url: str | None = Field(
        default=None,
        description="PostgreSQL/PostGIS server to use; unset = the embedded cluster in data_dir.",
    )
    read_database_url: str | None = Field(
        default=None,
        description="Read replica (or read-only role) for the API's read-only queries; "
        "CIM_READ_DATABASE_URL or CIM_DATABASE_READ_URL. Unset = everything on database_url.",
        validation_alias=AliasChoices("CIM_READ_DATABASE_URL", "CIM_DATABASE_READ_URL"),
    )
    data_dir: Path = Field(
        default=Path(".cim"),
        description="Home of the embedded cluster, tiles and uploads (default ./.cim).",
    )
    srid: int | None = Field(
        default=None,
        description="Storage EPSG code, fixed when the database is first initialised (4547).",
    )
    pg_bindir: Path | None = Field(
        default=None, description="PostgreSQL server binaries for the embedded cluster."
    )
    statement_timeout_ms: int = Field(default=30_000, ge=100)
    log_level: str = Field(default="INFO")
    log_format: Literal["auto", "json", "text"] = Field(
        default="auto",
        description="Log lines as JSON objects, as text, or auto: text on a terminal, else JSON.",
    )
    metrics_public: bool = Field(
        default=False,
        description="Serve GET /metrics to any caller; by default only to loopback callers and "
        "admin keys.",
    )
    wal_archive: Path | None = Field(
        default=None,
        description="WAL archive folder of the embedded cluster (point-in-time recovery); unset: "
        "no archiving.",
    )
    cors_origins: str = Field(
        default="", description="Comma-separated origins allowed by CORS; '*' for any, '' none."
    )
    public_collections: str = Field(
        default="*",
        description="Comma-separated collection ids anyone may read without a key; '*' = all.",
    )
    sensitive_utilities: str = Field(
        default="RQ,DL",
        description="Utility classes whose pipes need an API key (reader or above) to read.",
    )
    max_limit: int = Field(default=10_000, ge=1, description="Cap on items per page.")
    max_analysis_limit: int = Field(
        default=10_000,
        ge=1,
        description="Largest `limit` of an analysis (pipe query, clearance, clashes); more -> 400.",
    )
    max_analysis_area_m2: float = Field(
        default=4_000_000.0,
        gt=0,
        description="Largest area (m²) an excavation examines (the cut grown by its margin).",
    )
    max_highlight_features: int = Field(
        default=5_000,
        ge=1,
        description="Most GeoJSON features in an analysis highlight, and most items in the "
        "lists of a trace or isolation; beyond, they are cut (`truncated: true`), counts exact.",
    )
    analysis_timeout_ms: int | None = Field(
        default=None,
        ge=1,
        description="Deadline of one analysis request, SQL and Python work together; "
        "unset = statement_timeout_ms. Past it: 503 with Retry-After.",
    )
    max_body_bytes: int = Field(
        default=1 << 30, ge=1024, description="Largest request body accepted (uploads)."
    )
    ifczip_max_expanded_bytes: int = Field(
        default=DEFAULT_IFCZIP_MAX_EXPANDED_BYTES,
        ge=1024,
        description="Largest size the .ifc inside an .ifczip may expand to; beyond it the "
        "import is refused (checked on the header and while streaming).",
    )
    collection_cache_seconds: float = Field(
        default=5.0, ge=0, description="How long the list of non-empty collections is cached."
    )
    heavy_concurrency: int = Field(
        default=1,
        ge=1,
        description="Heavy analyses running at once per server process (run one process per "
        "core: each heavy analysis keeps a core busy).",
    )
    analysis_concurrency: int = Field(
        default=1,
        ge=1,
        description="Other analyses (query, section, QC) running at once per server process.",
    )
    serve_jobs: bool = Field(
        default=True,
        description="Each `cim serve` process runs queued jobs (imports, tile refreshes) in a "
        "worker thread; off when `cim worker` processes run them.",
    )
    tiles_refresh_after_import: bool = Field(
        default=True,
        description="An import through `POST /datasets` queues the refresh of its tile layers.",
    )
    analysis_queue: int = Field(
        default=16, ge=0, description="Other analyses waiting for a slot; beyond: 503 at once."
    )
    request_threads: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Threads of the synchronous request path per server process, beside one per "
        "running heavy analysis. Few threads answer fastest: more only fight over the GIL.",
    )
    heavy_queue: int = Field(
        default=8, ge=0, description="Heavy analyses waiting for a slot; beyond: 503 at once."
    )
    heavy_queue_seconds: float = Field(
        default=2.0, ge=0, description="Longest wait for a heavy-analysis slot; then 503."
    )
    analysis_processes: int | None = Field(
        default=None,
        ge=0,
        le=64,
        description="`cim serve`: worker processes of the analysis group (every `/analysis/` "
        "request runs there, niced, so it never holds an API worker's GIL); unset = as many as "
        "`--workers`; 0 = analyses run in the API workers.",
    )
    analysis_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="CPU niceness added to the analysis processes: under load the cores go to "
        "items, tiles and features first.",
    )
    analysis_socket: Path | None = Field(
        default=None,
        description="Unix socket of the analysis processes; set by `cim serve` for its API "
        "workers (unset: analyses run in the process that receives them).",
    )
    anonymous_rate_per_minute: int = Field(
        default=600, ge=0, description="Requests per minute of one anonymous address; 0 = off."
    )
    api_key_cache_seconds: float = Field(
        default=60.0,
        ge=0,
        description="How long a key's validity is remembered by the rate limiter (not access).",
    )
    cql_max_length: int = Field(
        default=16_384, ge=64, description="Most characters of a CQL2 filter (text or JSON)."
    )
    cql_max_depth: int = Field(
        default=20, ge=2, description="How deeply a CQL2 filter's operators (or brackets) nest."
    )
    cql_max_conditions: int = Field(
        default=200, ge=1, description="Most conditions (comparisons, predicates) in one filter."
    )
    cql_max_in_values: int = Field(
        default=1_000, ge=1, description="Most values in one CQL2 IN (...) list."
    )
    terrain_max_points: int = Field(
        default=10_000,
        ge=1,
        description="Most points of one elevation request (GET or POST) or profile samples.",
    )
    mqtt_url: str | None = Field(
        default=None,
        description="MQTT broker to ingest SensorThings observations from (mqtt://host:port); "
        "set by ``cim serve --mqtt`` / ``--mqtt-url``. Unset: no MQTT ingestion.",
    )
    mqtt_batch: int = Field(
        default=2000, ge=1, le=50_000, description="MQTT messages per write transaction."
    )
    mqtt_flush_ms: int = Field(
        default=200,
        ge=1,
        le=10_000,
        description="A batch smaller than mqtt_batch is written after this many milliseconds.",
    )
    mqtt_publish: bool = Field(
        default=True, description="Publish stored observations back on their topic (as FROST)."
    )

    @field_validator("wal_archive", mode="before")
    @classmethod
    def _no_empty_archive(cls, value: object) -> object:
        """``CIM_WAL_ARCHIVE=`` (empty) means no archive, not the current folder."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("database_url", "read_database_url")
    @classmethod
    def _normalise_driver(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        return normalise_database_url(value)

    @field_validator("data_dir")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("srid")
    @classmethod
    def _positive_srid(cls, value: int | None) -> int | None:
        if value is not None and value <= 0:
            raise ValueError("CIM_SRID must be a positive EPSG code")
        return value

    @property
    def initial_srid(self) -> int:
        """SRID a new database is initialised with."""
        return self.srid or DEFAULT_STORAGE_SRID

    @property
    def tiles_dir(self) -> Path:
        """Where tilesets are written and served from."""
        return self.data_dir / "tiles"

    @property
    def cors_origin_list(self) -> list[str]:
        """``cors_origins`` split into a list (empty = CORS off)."""
        return _split(self.cors_origins)

    @property
    def public_collection_set(self) -> frozenset[str]:
        """Collections readable without a key; contains ``*`` when every one is."""
        return frozenset(_split(self.public_collections))

    @property
    def sensitive_utility_set(self) -> frozenset[str]:
        """Upper-case utility class codes whose pipes need a role to read."""
        return frozenset(code.upper() for code in _split(self.sensitive_utilities))

    @property
    def uses_embedded_database(self) -> bool:
        """True when cim manages its own PostgreSQL cluster under ``data_dir``."""
        return self.database_url is None
