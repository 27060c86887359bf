"""Registry of queue models, by the name specs and the CLI use.

`get_queue_model(name)` builds a fresh model; an unknown name raises
`UnknownQueueModel` (a `KeyError`) whose message lists the known names.

To extend: write the model in its own module and add one line to `_FACTORIES`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from queue_models.base import QueueModel
from queue_models.batch_queue import BatchQueueModel
from queue_models.batch_queue_v06 import BatchQueueV06Model
from queue_models.capacity_model import CapacityTableModel
from specs.registry import UnknownNameError

DEFAULT_QUEUE_MODEL = "batch-queue"

_FACTORIES: Mapping[str, Callable[[], QueueModel]] = MappingProxyType(
    {
        BatchQueueModel.name: BatchQueueModel,
        BatchQueueV06Model.name: BatchQueueV06Model,
        CapacityTableModel.name: CapacityTableModel,
    }
)


class UnknownQueueModel(UnknownNameError):
    """No queue model is registered under the requested name (lists the known names)."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__("queue model", name, known)


def queue_model_names() -> list[str]:
    """Registered names, sorted."""
    return sorted(_FACTORIES)


def get_queue_model(name: str) -> QueueModel:
    """A new instance of the model registered under `name`."""
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise UnknownQueueModel(name, queue_model_names()) from None
    return factory()
