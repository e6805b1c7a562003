"""oslo.config options of the shim: ``[ecrae]`` (scheduler) and ``[ecrae_nats]``
(notification driver).

Importing this module registers both groups on ``oslo_config.cfg.CONF`` (which
is ``nova.conf.CONF``). ``list_opts`` is the ``oslo.config.opts`` entry point
used by oslo-config-generator.
"""

from oslo_config import cfg

ecrae_group = cfg.OptGroup(
    'ecrae',
    title='ECRAE placement service',
    help='Where the EcraeFilter and EcraeWeigher send their passes.')

ECRAE_OPTS = [
    cfg.StrOpt('endpoint', default='127.0.0.1:50051',
               help='host:port of the ECRAE gRPC service (ecrae serve).'),
    cfg.ListOpt('endpoints', default=[],
                help='host:port of every replica of a clustered ECRAE '
                     'service; when set, it replaces endpoint. Each '
                     'scheduler process prefers one replica (chosen from '
                     'its host name and pid, so the host states it sent '
                     'stay with the replica that holds them), moves to '
                     'the next within the same deadline when that one is '
                     'down or stopping, and tries its own first again '
                     'after down_seconds.'),
    cfg.FloatOpt('down_seconds', default=5.0, min=0.0,
                 help='How long a replica that failed a call is tried '
                      'last (endpoints).'),
    cfg.FloatOpt('timeout', default=0.2, min=0.001,
                 help='Deadline of one FilterHosts/WeighHosts call, in '
                      'seconds. Past it the pass fails open (or closed, '
                      'see fail_open).'),
    cfg.FloatOpt('weight_multiplier', default=1.0,
                 help='Multiplier of the EcraeWeigher. Overridden per '
                      'aggregate by the metadata key '
                      'ecrae_weight_multiplier. 0 switches the weigher off.'),
    cfg.BoolOpt('fail_open', default=True,
                help='When the service is down, slow or answers an error: '
                     'true lets every host pass the filter; false rejects '
                     'every host (no boot is placed without the service). '
                     'The weigher gives every host 0 either way.'),
    cfg.IntOpt('max_message_mb', default=64, min=1, max=2047,
               help='Largest gRPC message sent to or received from the '
                    'service, in MiB. A pass sends every candidate host: '
                    '10,000 hosts with libvirt\'s cpu_info are about 13 '
                    'MiB. Keep it equal to ecrae serve --grpc-max-message; '
                    'a pass past either limit fails open with "message '
                    'too large" in the log.'),
    cfg.BoolOpt('tls_enabled', default=False,
                help='Use TLS to reach the service.'),
    cfg.StrOpt('ca_file',
               help='CA bundle to verify the service (TLS); the system '
                    'roots when unset.'),
    cfg.StrOpt('cert_file',
               help='Client certificate for mutual TLS.'),
    cfg.StrOpt('key_file',
               help='Private key of cert_file.'),
]

nats_group = cfg.OptGroup(
    'ecrae_nats',
    title='ECRAE NATS notification driver',
    help='Options of the oslo.messaging notification driver "nats" '
         '([oslo_messaging_notifications] driver = nats).')

NATS_OPTS = [
    cfg.StrOpt('url', default='nats://127.0.0.1:4222',
               help='NATS server URL, nats://[user:password@]host:port or '
                    'tls://host:port. Several URLs may be given separated '
                    'by commas; they are tried in turn.'),
    cfg.StrOpt('subject_prefix', default='nova',
               help='Notifications go to <prefix>.<topic>.<priority>.'
                    '<event_type>.'),
    cfg.StrOpt('user', help='NATS user.'),
    cfg.StrOpt('password', secret=True, help='NATS password.'),
    cfg.StrOpt('token', secret=True, help='NATS authentication token.'),
    cfg.BoolOpt('tls_enabled', default=False,
                help='Use TLS to reach NATS.'),
    cfg.StrOpt('ca_file', help='CA bundle to verify the NATS server.'),
    cfg.StrOpt('cert_file', help='Client certificate for mutual TLS.'),
    cfg.StrOpt('key_file', help='Private key of cert_file.'),
    cfg.FloatOpt('timeout', default=0.5, min=0.0,
                 help='The longest a notify() call may block, in seconds. '
                      'In practice notify() only appends to a buffer.'),
    cfg.IntOpt('buffer_size', default=10000, min=1,
               help='Notifications kept while NATS is unreachable; when '
                    'full the oldest is dropped.'),
    cfg.FloatOpt('ack_timeout', default=2.0, min=0.0,
                 help='Each notification is a JetStream publish, sent '
                      'again when the stream (ecrae serve\'s) did not '
                      'acknowledge it within this many seconds or refused '
                      'it (a clustered stream electing a new leader); '
                      'kept in the buffer meanwhile. 0: plain publishes, '
                      'not acknowledged (for a NATS without the stream).'),
]


# Each ConfigOpts gets its own OptGroup copy: oslo.config keeps overrides in
# the group object, which would otherwise be shared between ConfigOpts.
def register_opts(conf):
    conf.register_group(cfg.OptGroup(ecrae_group.name, ecrae_group.title,
                                     ecrae_group.help))
    conf.register_opts(ECRAE_OPTS, group=ecrae_group.name)


def register_nats_opts(conf):
    conf.register_group(cfg.OptGroup(nats_group.name, nats_group.title,
                                     nats_group.help))
    conf.register_opts(NATS_OPTS, group=nats_group.name)


def list_opts():
    return [(ecrae_group, ECRAE_OPTS), (nats_group, NATS_OPTS)]


register_opts(cfg.CONF)
register_nats_opts(cfg.CONF)
