"""The golden a run would be judged against, for ``compare golden RUN``: from a database or a team server.

A run given as a file (a CI runner's fresh capture) is not stored, so its
golden is found by its key: the golden's name, the run's suite version and
its device class, as the store judges stored runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from driftboard.core.errors import NotFoundError
from driftboard.core.run import device_class

if TYPE_CHECKING:
    from driftboard.core.run import ArraySource, Run
    from driftboard.db.remote import TeamServer

DEFAULT_GOLDEN = "default"


def golden_baseline(run: Run, *, db_url: str | None = None, server: TeamServer | None = None,
                    name: str = DEFAULT_GOLDEN) -> tuple[Run, ArraySource]:
    """The golden ``name`` for ``run``'s suite version and device class, with its arrays."""
    if server is not None:
        return server.load_run(server.golden_run_id(run, name))
    from driftboard.db.store import GoldenKey, load_stored_run, shared_store

    key = GoldenKey(name, run.suite_id, run.suite_version, device_class(run))
    found = next((mark for mark in shared_store(db_url).goldens(name) if mark.key == key), None)
    if found is None:
        raise NotFoundError(f"no golden {name!r} in the database for {key.suite_id} v{key.suite_version} on "
                            f"{key.device_class}: set one with driftboard golden set RUN_ID")
    return load_stored_run(found.run_id, db_url)
