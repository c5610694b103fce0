"""Where a needle sits in its haystack: the four depth buckets that every passkey and retrieval
record, interval and table is broken down by."""

from __future__ import annotations

__all__ = ["DEPTH_BUCKETS", "depth_bucket"]

DEPTH_BUCKETS = ("0-25%", "25-50%", "50-75%", "75-100%")


def depth_bucket(depth: float) -> str:
    """The bucket of a needle at relative ``depth`` (0 = start of the haystack, 1 = end).

    Returns:
        one of :data:`DEPTH_BUCKETS`; a depth of exactly 1.0 falls in the last bucket.
    """
    return DEPTH_BUCKETS[min(len(DEPTH_BUCKETS) - 1, int(depth * len(DEPTH_BUCKETS)))]
