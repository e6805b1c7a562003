#!/usr/bin/env bash
# Installs the Debian packages the tests need. Idempotent: apt-get runs only
# when a package is missing. Needs root (CI runs as root).
set -euo pipefail
pkgs=(
  python3-nova python3-placement python3-oslotest python3-wsgi-intercept   # Nova's own functional harness
  python3-grpcio python3-protobuf python3-pytest                           # the shim and its tests
  python3-venv python3-setuptools python3-wheel                            # pip-installing the shim into a venv
  nats-server                                                              # Python-side notifier tests; Go: the host view across a NATS restart
  protobuf-compiler protobuf-compiler-grpc                                 # make generate (Python stubs)
  python3-tosca-parser                                                     # checks resolved TOSCA with a reference parser
  python3-keystone curl                                                    # a throw-away Keystone for the token test (scripts/keystone-local.sh)
  openssl                                                                  # certificates for the shim's mutual TLS test in Nova's harness
  python3-pyghmi ipmitool systemd                                          # fake BMC (IPMI DCMI and chassis power peer), its client, systemd-analyze verify of the agent unit
  chromium chromium-driver                                                 # the web console in a real headless browser (server/console)
  prometheus                                                               # promtool: checks deploy/prometheus/alerts.yml and its rule tests
  lxc busybox-static iptables                                              # agent: real LXC containers for the CRIU migration tests
  podman runc conmon                                                       # agent: real podman containers (runc checkpoints with CRIU 4.2)
  libbsd0 libgnutls30 libprotobuf-c1 libnl-3-200 libnet1 libuuid1          # runtime libraries of CRIU 4.2 (scripts/criu.sh)
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "test dependencies: all installed"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-test-deps: missing ${missing[*]}; run as root (or: sudo apt-get install -y ${missing[*]})" >&2
  exit 1
fi
echo "test dependencies: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
