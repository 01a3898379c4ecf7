"""The store's tables. Changing one means adding a migration under `migrations/versions/`."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

functions = sa.Table(
    "functions",
    metadata,
    sa.Column("function_id", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(63), nullable=False, unique=True),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("tags", sa.Text, nullable=False),  # JSON list of strings
    # Version numbers are never reused, even after the newest version is deleted: pinned callers rely on them.
    sa.Column("versions_created", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),  # disabled by its owner since; null: enabled
)

versions = sa.Table(
    "versions",
    metadata,
    sa.Column("version_id", sa.String(40), primary_key=True),
    sa.Column("function_id", sa.String(40), sa.ForeignKey("functions.function_id"), nullable=False, index=True),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("spec", sa.Text, nullable=False),  # ServiceSpec JSON
    sa.Column("code_kind", sa.String(16), nullable=False),
    sa.Column("code_sha256", sa.String(64), nullable=False),
    sa.Column("entrypoint", sa.String(300), nullable=True),
    sa.Column("init_sha256", sa.String(64), nullable=True),
    sa.Column("init_shown", sa.Text, nullable=True),  # JSON {"args", "kwargs"} as /info shows them
    sa.Column("api", sa.Text, nullable=True),  # the API description its replicas reported
    # JSON {"requirements", "python", "env", "lock"}: the packages its replicas run with (None: the server's own);
    # the lock is added by its first build, so every later replica (another server's too) gets the same packages.
    sa.Column("environment", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("function_id", "number", name="uq_versions_function_number"),
)

deployments = sa.Table(
    "deployments",
    metadata,
    sa.Column("deployment_id", sa.String(40), primary_key=True),
    sa.Column("version_id", sa.String(40), sa.ForeignKey("versions.version_id"), nullable=False, unique=True),
    sa.Column("function_id", sa.String(40), sa.ForeignKey("functions.function_id"), nullable=False, index=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("spec", sa.Text, nullable=False),  # DeploymentSpec JSON
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("deployed_at", sa.DateTime(timezone=True), nullable=False),  # the last (re)deploy; newest is current
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("token_id", sa.String(40), primary_key=True),
    sa.Column("function_id", sa.String(40), sa.ForeignKey("functions.function_id"), nullable=False, index=True),
    sa.Column("label", sa.String(100), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False, unique=True),  # sha256 of the secret; the secret is not kept
    sa.Column("hint", sa.String(16), nullable=False),  # its first characters, so people can tell tokens apart
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
)

# Queued invocations. Times are epoch seconds (floats): this table is written at a high rate, so no conversions.
jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("job_id", sa.String(40), primary_key=True),
    sa.Column("function_id", sa.String(40), nullable=False),
    sa.Column("version_id", sa.String(40), nullable=False),  # the version it was sent to
    sa.Column("pinned", sa.Boolean, nullable=False),  # True: only that version may run it
    sa.Column("route", sa.String(320), nullable=False),  # "METHOD /path" as the endpoint declares it
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("path_params", sa.Text, nullable=False),  # JSON object
    sa.Column("query", sa.Text, nullable=False),  # JSON object
    sa.Column("assets", sa.Text, nullable=False),  # JSON list of asset ids
    sa.Column("policy", sa.Text, nullable=False),  # JSON: retry policy, timeout, ttl, retention
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),  # attempts started so far
    sa.Column("retried", sa.Integer, nullable=False),  # times it went back to the queue
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("queued_at", sa.Float, nullable=False),  # when it (last) entered the queue
    sa.Column("expires_at", sa.Float, nullable=False),  # not started by then: TIMED_OUT (its TTL)
    sa.Column("started_at", sa.Float, nullable=True),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Column("retain_until", sa.Float, nullable=True),  # finished jobs are deleted after this
    sa.Column("output", sa.LargeBinary, nullable=True),  # the result's JSON, when it fits inline
    sa.Column("output_asset", sa.String(40), nullable=True),  # else the asset holding it
    sa.Column("error", sa.Text, nullable=True),  # JSON {"code", "message"}
    sa.Column("owner", sa.String(40), nullable=True),  # the server that holds it (queued or running)
    sa.Column("delivered", sa.Boolean, nullable=False),  # its result was answered to a polling caller
    sa.Index("ix_jobs_function_state", "function_id", "state"),
    sa.Index("ix_jobs_owner_state", "owner", "state"),
    sa.Index("ix_jobs_retain_until", "retain_until"),
)

# Uploaded blobs (inputs over the request-size limit) and results too large to answer inline.
assets = sa.Table(
    "assets",
    metadata,
    sa.Column("asset_id", sa.String(40), primary_key=True),
    sa.Column("function_id", sa.String(40), nullable=True),  # made with that function's token; None: the owner
    sa.Column("kind", sa.String(16), nullable=False),  # "input" or "result"
    sa.Column("content_type", sa.String(200), nullable=False),
    sa.Column("description", sa.String(500), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # CREATED (awaiting its bytes) or UPLOADED
    sa.Column("size", sa.BigInteger, nullable=True),
    sa.Column("sha256", sa.String(64), nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("uploaded_at", sa.Float, nullable=True),
    sa.Column("expires_at", sa.Float, nullable=True),  # results are kept as long as their job
)

# Servers that hold jobs, and when each last said it is alive: a dead server's jobs are taken over.
servers = sa.Table(
    "servers",
    metadata,
    sa.Column("server_id", sa.String(40), primary_key=True),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("heartbeat_at", sa.Float, nullable=False),
)

# Named, reusable environments (`fnserve env create NAME -r requirements.txt`); a version copies the one it names.
environments = sa.Table(
    "environments",
    metadata,
    sa.Column("name", sa.String(63), primary_key=True),
    sa.Column("requirements", sa.Text, nullable=False),  # JSON list of requirement strings
    sa.Column("python", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
