"""A warning that is logged at most once per interval per process."""

import os
import threading
import time


class RateLimitedWarning(object):
    """Logs at most one warning per ``interval`` seconds per process and
    counts the ones it held back in the next message."""

    def __init__(self, logger, interval=60.0, clock=time.monotonic):
        self.logger = logger
        self.interval = interval
        self.clock = clock
        self._lock = threading.Lock()
        self._pid = None
        self._last = None
        self.suppressed = 0

    def warning(self, msg, *args):
        """Log ``msg % args`` unless a warning went out less than
        ``interval`` ago. Returns True when it logged."""
        with self._lock:
            now = self.clock()
            pid = os.getpid()
            if pid != self._pid:  # a forked worker starts afresh
                self._pid, self._last, self.suppressed = pid, None, 0
            if self._last is not None and now - self._last < self.interval:
                self.suppressed += 1
                return False
            held, self.suppressed, self._last = self.suppressed, 0, now
        if held:
            msg += ' (%d similar warning(s) suppressed in the last %ds)'
            args = args + (held, int(self.interval))
        self.logger.warning(msg, *args)
        return True

    def reset(self):
        with self._lock:
            self._pid, self._last, self.suppressed = None, None, 0


class RateLimitedWarnings(object):
    """One RateLimitedWarning per key (a reason): each reason is logged at
    most once per ``interval``, and a new reason is never held back by
    another."""

    def __init__(self, logger, interval=60.0, clock=time.monotonic):
        self.logger = logger
        self.interval = interval
        self.clock = clock
        self._lock = threading.Lock()
        self._by_key = {}

    def warning(self, key, msg, *args):
        with self._lock:
            w = self._by_key.get(key)
            if w is None:
                w = RateLimitedWarning(self.logger, self.interval,
                                       lambda: self.clock())
                self._by_key[key] = w
        return w.warning(msg, *args)

    def reset(self):
        with self._lock:
            self._by_key = {}
