"""Queue depth in the broker: messages waiting per Celery queue, and messages taken, not acked."""

from __future__ import annotations

import redis
from kombu.transport.redis import PRIORITY_STEPS, Channel

from orchestrator.taskqueue import QUEUE_OF


def queue_names() -> list[str]:
    """The queues the workers consume."""
    return sorted(set(QUEUE_OF.values()))


def _lists_of(queue: str) -> list[str]:
    """The Redis lists kombu keeps a queue in: one per priority step (step 0 is the bare name)."""
    return [queue if step == 0 else f"{queue}{Channel.sep}{step}" for step in PRIORITY_STEPS]


def queue_depths(client: redis.Redis) -> dict[str, int]:
    """Messages waiting in each queue (every priority step added up)."""
    queues = queue_names()
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        for name in _lists_of(queue):
            pipe.llen(name)
    sizes = iter(pipe.execute())
    return {queue: sum(int(next(sizes)) for _ in PRIORITY_STEPS) for queue in queues}


def unacked_messages(client: redis.Redis) -> int:
    """Messages a worker has taken and not yet acknowledged (all queues)."""
    return int(client.hlen(Channel.unacked_key))
