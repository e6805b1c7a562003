"""ECRAE's shim for OpenStack Nova.

``ecrae_nova.EcraeFilter`` and ``ecrae_nova.EcraeWeigher`` are the names to put
in nova.conf; the notification driver is ``ecrae_nova.notifier:NatsDriver``
(entry point ``nats``). Importing this package is cheap: it registers the
oslo.config options and nothing else; the scheduler classes (and Nova, gRPC)
are imported when first asked for, and no channel is opened before a call.
"""

from ecrae_nova import opts  # noqa: F401  (registers [ecrae], [ecrae_nats])

__all__ = ['EcraeFilter', 'EcraeWeigher']


def __getattr__(name):
    if name in __all__:
        from ecrae_nova import scheduler
        return getattr(scheduler, name)
    raise AttributeError('module %r has no attribute %r' % (__name__, name))


def __dir__():
    return sorted(list(globals()) + __all__)
