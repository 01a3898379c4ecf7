"""Invocation tokens as the store keeps them: a digest and a hint per token, never the secret itself."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from fnserve.errors import NotFound
from fnserve.store.functions import as_utc, new_id, utcnow
from fnserve.store.tables import tokens


@dataclass(frozen=True)
class TokenRecord:
    token_id: str
    function_id: str
    label: str
    digest: str
    hint: str
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _token(row: sa.Row[tuple[object, ...]]) -> TokenRecord:
    return TokenRecord(
        token_id=row.token_id,
        function_id=row.function_id,
        label=row.label,
        digest=row.digest,
        hint=row.hint,
        created_at=as_utc(row.created_at),
        revoked_at=as_utc(row.revoked_at) if row.revoked_at is not None else None,
    )


class TokenStore:
    """Tokens in the state store's database (the same engine as `StateStore`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, function_id: str, *, label: str, digest: str, hint: str) -> TokenRecord:
        now = utcnow()
        token_id = new_id("tok")
        with self.engine.begin() as connection:
            connection.execute(
                tokens.insert().values(
                    token_id=token_id, function_id=function_id, label=label, digest=digest, hint=hint, created_at=now
                )
            )
        return TokenRecord(token_id, function_id, label, digest, hint, now, None)

    def list(self, function_id: str | None = None, *, active_only: bool = False) -> list[TokenRecord]:
        query = sa.select(tokens).order_by(tokens.c.created_at)
        if function_id is not None:
            query = query.where(tokens.c.function_id == function_id)
        if active_only:
            query = query.where(tokens.c.revoked_at.is_(None))
        with self.engine.connect() as connection:
            return [_token(row) for row in connection.execute(query).all()]

    def revoke(self, function_id: str, token_ref: str, *, digest: str | None = None) -> TokenRecord:
        """Revoke a token of this function by id or hint, or by `digest`, that of the whole token (then `token_ref`
        is only how messages name it); revoking it again changes nothing."""
        if digest is not None:
            matches = tokens.c.digest == digest
        else:
            matches = sa.or_(tokens.c.token_id == token_ref, tokens.c.hint == token_ref)
        with self.engine.begin() as connection:
            rows = connection.execute(sa.select(tokens).where(tokens.c.function_id == function_id, matches)).all()
            if len(rows) != 1:
                problem = (
                    f"No token {token_ref!r} for this service" if not rows else f"{token_ref!r} names several tokens"
                )
                raise NotFound(f"{problem}; list them with `fnserve tokens ls NAME` and give the token id")
            row = rows[0]
            if row.revoked_at is None:
                connection.execute(tokens.update().where(tokens.c.token_id == row.token_id).values(revoked_at=utcnow()))
            found = connection.execute(sa.select(tokens).where(tokens.c.token_id == row.token_id)).one()
        return _token(found)
