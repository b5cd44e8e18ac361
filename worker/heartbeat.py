"""A thread that proves running work alive every interval while a block runs, whatever the core is doing.

A sweep treats work whose last beat is older than ATTENCRAFT_STALE_AFTER_SECONDS as orphaned (its worker died).
"""

import logging
import threading
from collections.abc import Callable
from types import TracebackType

from sqlalchemy.orm import Session, sessionmaker

logger = logging.getLogger(__name__)


class Heartbeat:
    def __init__(
        self, sessions: sessionmaker[Session], beat: Callable[[Session], object], what: str, interval_s: float
    ) -> None:
        """``beat`` records one beat in the session (committed here); ``what`` names the work in logs."""
        self._sessions = sessions
        self._beat_once = beat
        self._what = what
        self._interval_s = interval_s
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{what}", daemon=True)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _error: BaseException | None, _traceback: TracebackType | None
    ) -> None:
        self._stopped.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stopped.wait(self._interval_s):
            try:
                with self._sessions() as session:
                    self._beat_once(session)
                    session.commit()
            except Exception:  # a database hiccup: the next beat tries again
                logger.warning("heartbeat of %s failed", self._what, exc_info=True)
