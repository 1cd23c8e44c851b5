#!/usr/bin/env bash
# Installs what `make test` and `make demo` need on a fresh Debian machine, saying what it does.
# Needs: PostgreSQL server binaries (initdb, pg_ctl, postgres), psql/pg_dump, tmux (console e2e test),
# promtool (alert rule tests), Alertmanager and amtool (alert delivery tests), Patroni and etcd
# (the Patroni switchover test), haproxy (the two-API-server topology).
set -euo pipefail

need=()
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v pg_config >/dev/null 2>&1; then
  need+=(postgresql)
fi
command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
command -v tmux >/dev/null 2>&1 || need+=(tmux)
command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || need+=(prometheus) # promtool checks deploy/prometheus rules
# alertmanager and amtool: the alert delivery tests and the deploy/alertmanager config check
command -v amtool >/dev/null 2>&1 && command -v prometheus-alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
id postgres >/dev/null 2>&1 || need+=(postgresql)
# patroni and etcd: the Patroni switchover test (e2e) runs a three-member cluster on a real etcd
command -v patroni >/dev/null 2>&1 || need+=(patroni python3-etcd)
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
# haproxy: the two-server topology (pgactl demo --ha) and the drain and rolling-deploy tests
command -v haproxy >/dev/null 2>&1 || need+=(haproxy)

if ((${#need[@]} == 0)); then
  exit 0
fi

echo "ensure-deps: installing missing packages: ${need[*]}"
if [[ $(id -u) -ne 0 ]]; then
  echo "ensure-deps: not root; please run: sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# The Debian package starts a default cluster; we never use it (tests and the demo start their own).
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
if command -v pg_lsclusters >/dev/null 2>&1; then
  pg_lsclusters -h 2>/dev/null | while read -r ver name _; do
    pg_ctlcluster "$ver" "$name" stop 2>/dev/null || true
  done
fi
# etcd-server starts a system etcd on the default ports; the tests start their own on free ones.
if command -v systemctl >/dev/null 2>&1; then
  systemctl disable --now etcd >/dev/null 2>&1 || true
fi
pkill -x etcd -u etcd 2>/dev/null || true
# haproxy's package starts a system haproxy on port 80 with its default config; ours run on free ports.
if command -v systemctl >/dev/null 2>&1; then
  systemctl disable --now haproxy >/dev/null 2>&1 || true
fi
echo "ensure-deps: done"
