"""Access-token cache shared by the WeCom and DingTalk clients.

Why: both platforms issue 7200-second tokens, rate-limit the token endpoints, and (for
WeCom) a second concurrent ``gettoken`` may invalidate the token other threads are using
(docs/reliability.md §4).  So a token is fetched once per (platform, app key), shared by all
threads, refreshed 5 minutes before it expires, and dropped only when the platform says it
is invalid.

The storage is behind the small :class:`TokenStore` protocol so that a DB-backed store (shared
between worker processes, with a lease) can replace :class:`InMemoryTokenStore` later without
touching the clients.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Protocol

Clock = Callable[[], float]
TokenKey = tuple[str, str]
# A fetcher returns (token, lifetime in seconds as reported by the platform).
TokenFetcher = Callable[[], tuple[str, float]]

DEFAULT_REFRESH_MARGIN = 300.0


@dataclass(frozen=True)
class CachedToken:
    """A token plus the epoch times at which to refresh it and at which it expires."""

    value: str
    refresh_at: float
    expires_at: float

    def __repr__(self) -> str:  # never print the token itself
        return f"CachedToken(value=***, refresh_at={self.refresh_at}, expires_at={self.expires_at})"


class TokenStore(Protocol):
    """Where cached tokens live.  Implementations must be safe to call from several threads."""

    def load(self, key: TokenKey) -> CachedToken | None: ...

    def save(self, key: TokenKey, token: CachedToken) -> None: ...

    def delete(self, key: TokenKey) -> None: ...


class InMemoryTokenStore:
    """Process-local store; enough for a single worker process."""

    def __init__(self) -> None:
        self._data: dict[TokenKey, CachedToken] = {}
        self._lock = threading.Lock()

    def load(self, key: TokenKey) -> CachedToken | None:
        with self._lock:
            return self._data.get(key)

    def save(self, key: TokenKey, token: CachedToken) -> None:
        with self._lock:
            self._data[key] = token

    def delete(self, key: TokenKey) -> None:
        with self._lock:
            self._data.pop(key, None)


class TokenCache:
    """Caches one token per ``(platform, app_key)``; thread-safe, with an injectable clock.

    ``get`` holds a per-key lock while fetching, so N threads that find the token missing or
    stale cause exactly one fetch; the others wait and reuse the result.
    """

    def __init__(
        self,
        store: TokenStore | None = None,
        clock: Clock = time.time,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
    ) -> None:
        self._store: TokenStore = store if store is not None else InMemoryTokenStore()
        self._clock = clock
        self._margin = refresh_margin
        self._locks: dict[TokenKey, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def _lock_for(self, key: TokenKey) -> threading.Lock:
        with self._locks_guard:
            lock = self._locks.get(key)
            if lock is None:
                lock = self._locks[key] = threading.Lock()
            return lock

    def _fresh(self, key: TokenKey) -> CachedToken | None:
        cached = self._store.load(key)
        if cached is not None and self._clock() < cached.refresh_at:
            return cached
        return None

    def get(self, platform: str, app_key: str, fetch: TokenFetcher) -> str:
        """Return a valid token, calling ``fetch`` only when none is cached or it is near expiry.

        Exceptions from ``fetch`` propagate and nothing is cached.
        """
        key = (platform, app_key)
        cached = self._fresh(key)
        if cached is not None:
            return cached.value
        with self._lock_for(key):
            cached = self._fresh(key)  # another thread may have refreshed while we waited
            if cached is not None:
                return cached.value
            value, lifetime = fetch()
            now = self._clock()
            lifetime = max(float(lifetime), 0.0)
            # Refresh `margin` seconds early, but for unusually short lifetimes keep at least
            # half of it usable so that we do not refetch on every call.
            refresh_in = max(lifetime - self._margin, lifetime / 2)
            self._store.save(key, CachedToken(value, now + refresh_in, now + lifetime))
            return value

    def invalidate(self, platform: str, app_key: str, token: str | None = None) -> None:
        """Forget the cached token.

        Pass the ``token`` that the platform rejected: if another thread has already replaced
        it with a new one, the new one is kept (avoids a refresh stampede).
        """
        key = (platform, app_key)
        with self._lock_for(key):
            cached = self._store.load(key)
            if cached is None:
                return
            if token is None or cached.value == token:
                self._store.delete(key)
