"""Real Celery processes (a private Redis, workers, beats): tests/support/cluster.py, which
tests share with the bench (tests never import the bench)."""

from tests.support.cluster import Cluster, RedisServer, free_port, redis_server_available

__all__ = ["Cluster", "RedisServer", "free_port", "redis_server_available"]
