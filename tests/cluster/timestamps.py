"""Timestamps in the two wire formats of the Kubernetes API."""

from __future__ import annotations

import datetime


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def rfc3339(moment: datetime.datetime) -> str:
    """``metav1.Time``: whole seconds, UTC, e.g. ``2026-11-25T14:21:13Z``."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro(moment: datetime.datetime) -> str:
    """``metav1.MicroTime`` (Lease renewals): always six fractional digits, which it insists on."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
