"""What one API process holds: its settings, the registry store, the loaded model versions."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from fastapi import Request

from unlearnd.config import Settings
from unlearnd.registry import RegistryStore

# A served version is a full copy of the base model plus its adapters: keep few in memory.
# The live one and one other (an operator comparing before / after a deletion) is the usual use.
MAX_LOADED = 2


class ModelCache:
    """One ServedVersion per version id, loaded on first use, least recently used dropped."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._loaded: OrderedDict[int | None, tuple[Any, threading.Lock]] = OrderedDict()
        self._lock = threading.Lock()
        self.deployment: Any = None

    def get(self, store: RegistryStore, version_id: int | None) -> tuple[Any, threading.Lock]:
        """The served version and the lock to hold while it runs (one query at a time)."""
        # Imported here: torch and transformers take seconds, and only model routes need them.
        from unlearnd.serving import Deployment, ServedVersion

        with self._lock:  # also serialises loads: two first queries load the model once
            if version_id in self._loaded:
                self._loaded.move_to_end(version_id)
                return self._loaded[version_id]
            if version_id is not None:
                store.get_version(version_id)  # NotFound before an expensive load
            if self.deployment is None:
                self.deployment = Deployment(self.settings)
            entry = (ServedVersion(self.deployment, store, version_id), threading.Lock())
            self._loaded[version_id] = entry
            while len(self._loaded) > MAX_LOADED:
                self._loaded.popitem(last=False)
            return entry


class ApiState:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.models = ModelCache(settings)
        self._store: RegistryStore | None = None
        self._lock = threading.Lock()

    def store(self) -> RegistryStore:
        """Opened on first use: the API starts (and says it is not ready) while the database
        is still coming up, instead of crashing."""
        with self._lock:
            if self._store is None:
                from unlearnd.registry import open_registry

                self._store = open_registry(self.settings)
            return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


def state(request: Request) -> ApiState:
    return request.app.state.api


def store(request: Request) -> RegistryStore:
    return request.app.state.api.store()
