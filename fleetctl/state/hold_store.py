"""The store's holds: at most one per model, written by rollback, deleted by release and
by the apply that follows an inventory changed since the rollback.

A mixin of `StateStore` (kept apart so that the store stays small): it uses the store's
`_write` and `_read` transactions. Plans read holds without SQLAlchemy through
`fleetctl.state.peek.read_holds`; both hand out the same frozen `Hold` values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, select

from fleetctl.core.holds import Hold
from fleetctl.state.guard import refuse_forbidden
from fleetctl.state.models import Hold as HoldRow
from fleetctl.state.models import Rollout
from fleetctl.state.records import hold_from_row


class HoldsMixin:
    """Hold CRUD for `StateStore`."""

    def _write(self) -> AbstractContextManager[Session]:  # provided by StateStore
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Session]:  # provided by StateStore
        raise NotImplementedError

    def set_hold(
        self,
        *,
        model: str,
        version: str,
        revision: int,
        spec: Mapping[str, Any],
        inventory_version: str,
        rollout_id: int | None,
        command: str,
        forbidden_values: Sequence[str] = (),
    ) -> Hold:
        """Hold `model` at `version` (revision `revision`), replacing any hold it had."""
        if revision < 1:
            raise ValueError(f"revision must be >= 1; got {revision}")
        refuse_forbidden(
            {"spec": dict(spec), "command": command}, forbidden_values, f"hold on {model}"
        )
        row = HoldRow(
            model=model,
            version=version,
            revision=revision,
            spec_json=json.dumps(dict(spec), sort_keys=True, separators=(",", ":")),
            inventory_version=inventory_version,
            created_at=datetime.now(UTC),
            rollout_id=rollout_id,
            command=command,
        )
        with self._write() as session:
            if rollout_id is not None and session.get(Rollout, rollout_id) is None:
                raise ValueError(f"no rollout {rollout_id}")
            old = session.exec(select(HoldRow).where(HoldRow.model == model)).first()
            if old is not None:
                session.delete(old)
                session.flush()  # the UNIQUE(model) slot is free before the insert
            session.add(row)
            session.flush()
            return hold_from_row(row)

    def holds(self) -> list[Hold]:
        """Every hold, by model."""
        with self._read() as session:
            rows = session.exec(select(HoldRow).order_by(HoldRow.model))
            return [hold_from_row(r) for r in rows]

    def hold(self, model: str) -> Hold | None:
        with self._read() as session:
            row = session.exec(select(HoldRow).where(HoldRow.model == model)).first()
            return hold_from_row(row) if row is not None else None

    def delete_hold(self, model: str) -> Hold | None:
        """Delete `model`'s hold; return what it was (None: there was none)."""
        with self._write() as session:
            row = session.exec(select(HoldRow).where(HoldRow.model == model)).first()
            if row is None:
                return None
            gone = hold_from_row(row)
            session.delete(row)
            return gone
