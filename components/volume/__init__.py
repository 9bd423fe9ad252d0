"""Audit log volume: predict what a policy writes, and the history rotation keeps, from real events.

Pure (no pulumi): ``reader`` streams events, ``replay`` prices them per policy, ``rotation`` models
lumberjack, ``forecast`` ties them together, ``report`` formats; ``cli`` is ``python -m components volume``.
"""

from __future__ import annotations

from .forecast import Forecast, PolicyForecast, forecast
from .rotation import History, Rotation, history

__all__ = ["Forecast", "History", "PolicyForecast", "Rotation", "forecast", "history"]
