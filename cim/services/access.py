"""API keys, roles and the read policy of collections; the audit log of sensitive access.

A key's secret is shown once at creation; only its sha256 is stored. Roles are ranked
``reader`` < ``analyst`` < ``admin``: any role may read sensitive utility classes, ``analyst``
may also store analysis results (shelter plans), ``admin`` is needed to change data (imports,
deletes). Anonymous callers read the public collections only,
and never the pipes of sensitive classes (gas RQ and power DL by default).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cim.db.models import ApiKey, AuditLog
from cim.db.models.access import ROLES
from cim.errors import AuthenticationRequired, InvalidInput, NotFound, PermissionDenied
from cim.services.ogc.specs import CollectionSpec
from cim.services.results import Result

ROLE_RANK = {role: rank for rank, role in enumerate(ROLES, start=1)}
KEY_PREFIX = "cim_"
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    """Who is calling: an API key and its role, or anonymous (all None)."""

    key_id: int | None = None
    name: str | None = None
    role: str | None = None

    @property
    def anonymous(self) -> bool:
        return self.role is None

    def has(self, role: str) -> bool:
        return self.role is not None and ROLE_RANK[self.role] >= ROLE_RANK[role]


ANONYMOUS = Principal()


def hash_secret(secret: str) -> str:
    """The stored form of a key: sha256 hex of the secret."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_key(session: Session, *, name: str, role: str) -> tuple[ApiKey, str]:
    """A new key; returns the row and the secret, which is not stored and cannot be shown again."""
    if role not in ROLE_RANK:
        raise InvalidInput(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    if not name.strip():
        raise InvalidInput("a key needs a name")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(name=name.strip(), key_hash=hash_secret(secret), role=role)
    session.add(key)
    session.flush()
    session.refresh(key)
    return key, secret


def list_keys(session: Session, *, include_revoked: bool = False) -> list[ApiKey]:
    """Keys, oldest first; revoked ones only when asked."""
    query = select(ApiKey).order_by(ApiKey.id)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    return list(session.scalars(query))


def revoke_key(session: Session, *, key_id: int) -> ApiKey:
    """Revoke a key (kept for the audit trail); revoking twice keeps the first time."""
    key = session.get(ApiKey, key_id)
    if key is None:
        raise NotFound(f"API key {key_id} does not exist")
    if key.revoked_at is None:
        key.revoked_at = datetime.now(UTC)
        session.flush()
    return key


class KeySummary(Result):
    """What may be shown of an API key (never its hash); times in ISO 8601."""

    id: int
    name: str
    role: str
    created_at: str | None
    revoked_at: str | None
    last_used_at: str | None


class NewKey(KeySummary):
    """A key just created, with its secret: shown this once, never stored."""

    secret: str


def key_summary(key: ApiKey) -> KeySummary:
    """The summary of ``key`` (never its hash)."""
    return KeySummary(
        id=key.id,
        name=key.name,
        role=key.role,
        created_at=key.created_at.isoformat() if key.created_at else None,
        revoked_at=key.revoked_at.isoformat() if key.revoked_at else None,
        last_used_at=key.last_used_at.isoformat() if key.last_used_at else None,
    )


def authenticate(session: Session, *, secret: str) -> Principal:
    """The principal of ``secret``; AuthenticationRequired when unknown or revoked."""
    key = session.scalars(select(ApiKey).where(ApiKey.key_hash == hash_secret(secret))).first()
    if key is None or key.revoked_at is not None:
        raise AuthenticationRequired("the API key is unknown or revoked")
    now = datetime.now(UTC)
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        key.last_used_at = now  # coarse, so reads do not write on every request
    return Principal(key_id=key.id, name=key.name, role=key.role)


def require_role(principal: Principal, role: str) -> None:
    """401 for anonymous callers, 403 for roles below ``role``."""
    if principal.anonymous:
        raise AuthenticationRequired(f"this needs an API key with role {role} or above")
    if not principal.has(role):
        raise PermissionDenied(f"this needs role {role} or above; the key has {principal.role}")


@dataclass(frozen=True)
class ReadPolicy:
    """Which collections anonymous callers may read, and which utility classes are sensitive."""

    public_collections: frozenset[str]
    sensitive_utilities: frozenset[str]

    def is_public(self, collection_id: str) -> bool:
        return "*" in self.public_collections or collection_id in self.public_collections

    def is_sensitive(self, spec: CollectionSpec) -> bool:
        """True when reading ``spec`` may show sensitive classes (so it is audited)."""
        if spec.utility is not None:
            return spec.utility.upper() in self.sensitive_utilities
        return spec.utility_column is not None and bool(self.sensitive_utilities)

    def hidden_for(self, principal: Principal) -> frozenset[str]:
        """The utility classes ``principal`` may not see: the sensitive ones when anonymous."""
        return self.sensitive_utilities if principal.anonymous else frozenset()

    def can_list(self, spec: CollectionSpec, principal: Principal) -> bool:
        if not principal.anonymous:
            return True
        if spec.utility is not None and spec.utility.upper() in self.sensitive_utilities:
            return False
        return self.is_public(spec.id)

    def check_read(self, spec: CollectionSpec, principal: Principal) -> frozenset[str]:
        """Raise unless ``principal`` may read ``spec``; return the classes to leave out."""
        if not principal.anonymous:
            return frozenset()
        if spec.utility is not None and spec.utility.upper() in self.sensitive_utilities:
            raise AuthenticationRequired(
                f"{spec.id} is a sensitive utility class: it needs an API key"
            )
        if not self.is_public(spec.id):
            raise AuthenticationRequired(f"{spec.id} is not public: it needs an API key")
        return self.sensitive_utilities if spec.utility_column is not None else frozenset()


def audit(
    session: Session,
    *,
    principal: Principal,
    action: str,
    resource: str,
    client: str | None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Record one access or change in ``audit_log`` (inside the caller's transaction)."""
    session.add(
        AuditLog(
            api_key_id=principal.key_id,
            role=principal.role,
            action=action,
            resource=resource,
            client=client,
            detail=detail or {},
        )
    )
    session.flush()
