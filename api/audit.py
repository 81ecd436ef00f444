"""The audit trail of reads that show sensitive utility classes, one helper for every route.

A row of ``audit_log`` (action ``read``) says who (the key and its role; anonymous rows would
mean a leak), what (the route's resource and the sensitive classes shown), when, and how many
features (``detail.features``; per class in ``detail.per_class``). Rows are written on the
primary session, in the request's transaction, so they commit before the answer is sent (the
read session may be on a read-only replica).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from api.auth import PrincipalDep, client_address
from api.deps import ReadSessionDep, SessionDep, SettingsDep
from cim.services.access import Principal, audit
from cim.services.datasets import sensitive_class_counts
from cim.services.pipes.exposure import PipeAnswer, sensitive_segments

AnswerT = TypeVar("AnswerT", bound=PipeAnswer)


def audit_read(
    primary: Session,
    request: Request,
    principal: Principal,
    resource: str,
    detail: dict[str, object] | None = None,
) -> None:
    """Record a read of sensitive data by ``principal`` (on the primary session)."""
    audit(
        primary,
        principal=principal,
        action="read",
        resource=resource,
        client=client_address(request),
        detail=detail,
    )


def class_detail(per_class: dict[str, int]) -> dict[str, object]:
    """The ``detail`` of a read that showed ``per_class`` features of sensitive classes."""
    return {
        "classes": sorted(per_class),
        "features": sum(per_class.values()),
        "per_class": per_class,
    }


@dataclass(frozen=True)
class ReadAudit:
    """What a route needs to audit its answer: the caller, both sessions, the sensitive classes."""

    request: Request
    principal: Principal
    primary: Session
    read: Session
    sensitive: frozenset[str]

    def record(self, resource: str, detail: dict[str, object]) -> None:
        audit_read(self.primary, self.request, self.principal, resource, detail)

    def answer(self, resource: str, answer: AnswerT) -> AnswerT:
        """``answer``, after recording it when it shows segments of a sensitive class."""
        shown = sensitive_segments(self.read, answer=answer, sensitive=self.sensitive)
        if shown:
            self.record(resource, class_detail(shown))
        return answer

    def dataset(self, resource: str, dataset_id: int) -> None:
        """Record a read of a dataset's details when it holds sensitive classes."""
        held = sensitive_class_counts(self.read, dataset_id=dataset_id, classes=self.sensitive)
        if held:
            self.record(resource, class_detail(held))


def read_audit(
    request: Request,
    principal: PrincipalDep,
    primary: SessionDep,
    read: ReadSessionDep,
    settings: SettingsDep,
) -> ReadAudit:
    return ReadAudit(request, principal, primary, read, settings.sensitive_utility_set)


ReadAuditDep = Annotated[ReadAudit, Depends(read_audit)]
