# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0
"""Monotonic stopwatch shared by the migration modules.

Durations are seconds as floats, measured with ``time.monotonic()``;
wall-clock instants (for downtime across hosts) use ``time.time()``.
"""

from __future__ import annotations

import time


def wall_clock():
    """Seconds since the epoch, for instants compared across hosts."""
    return time.time()


class Stopwatch(object):
    """Collects named step durations.

    >>> sw = Stopwatch()
    >>> with sw.step("stop"):
    ...     pass
    >>> sorted(sw.durations)
    ['stop']
    """

    def __init__(self):
        self.durations = {}

    class _Step(object):
        def __init__(self, watch, name):
            self._watch = watch
            self._name = name
            self._t0 = None

        def __enter__(self):
            self._t0 = time.monotonic()
            return self

        def __exit__(self, exc_type, exc, tb):
            elapsed = time.monotonic() - self._t0
            self._watch.durations[self._name] = round(self._watch.durations.get(self._name, 0.0) + elapsed, 6)
            return False

    def step(self, name):
        """Context manager adding the elapsed time of its body to ``durations[name]``."""
        return Stopwatch._Step(self, name)
