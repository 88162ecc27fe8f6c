#!/usr/bin/env bash
# The Memorystore for Redis instance of one environment: the seat ledger, rate
# limits and the Celery broker (docs/operations.md, "Redis: ledger keys are
# never evicted").
#
#   deploy/memorystore/instance.sh dev|prod create   # a new instance
#   deploy/memorystore/instance.sh dev|prod update   # bring an existing one to these settings
#   deploy/memorystore/instance.sh dev|prod check    # exit 1 unless it has them
#
# maxmemory-policy noeviction: Memorystore's default, volatile-lru, evicts keys
# that have a TTL once memory is full, and every ledger key has one. An evicted
# lease frees a seat a machine still uses, and the seat is sold twice. With
# noeviction a full Redis refuses writes instead: acquires answer 503 and
# CoditectRedisMemoryHigh fires, but no seat is handed out twice.
#
# RDB snapshots every hour (the shortest period; Memorystore for Redis has no
# AOF, only Memorystore for Redis Cluster has): Standard tier's replica covers
# losing one node; a snapshot covers losing both, so Redis comes back with the
# state of the last hour rather than empty.
#
# Memorystore refuses CONFIG, so /ready cannot read the policy there: once
# `check` passes, REDIS_EVICTION_POLICY_VERIFIED=true in the overlays' ConfigMap
# (deploy/k8s/overlays/*/env) stands for it. Run `check` after any change to
# the instance.
set -euo pipefail

usage() {
  echo "usage: $0 dev|prod create|update|check" >&2
  exit 2
}

[[ $# -eq 2 ]] || usage
case "$1" in
  dev | prod) environment="$1" ;;
  *) usage ;;
esac

project="${PROJECT:-coditect-${environment}}"
region="${REGION:-europe-west1}"
instance="${INSTANCE:-coditect}"
network="${NETWORK:-projects/${project}/global/networks/coditect}"
size_gb="${SIZE_GB:-5}"
where=(--project="${project}" --region="${region}")

case "$2" in
  create)
    gcloud redis instances create "${instance}" "${where[@]}" \
      --tier=standard \
      --size="${size_gb}" \
      --redis-version=redis_7_0 \
      --network="${network}" \
      --connect-mode=private-service-access \
      --enable-auth \
      --transit-encryption-mode=server-authentication \
      --redis-config=maxmemory-policy=noeviction \
      --persistence-mode=rdb \
      --rdb-snapshot-period=1h
    ;;
  update)
    gcloud redis instances update "${instance}" "${where[@]}" \
      --update-redis-config=maxmemory-policy=noeviction \
      --persistence-mode=rdb \
      --rdb-snapshot-period=1h
    ;;
  check)
    settings="$(gcloud redis instances describe "${instance}" "${where[@]}" --format=json)"
    SETTINGS="${settings}" python3 - <<'PYTHON'
import json
import os
import sys

instance = json.loads(os.environ["SETTINGS"])
policy = instance.get("redisConfigs", {}).get("maxmemory-policy", "volatile-lru (the default)")
persistence = instance.get("persistenceConfig", {}).get("persistenceMode", "DISABLED")
problems = []
if policy != "noeviction":
    problems.append(f"maxmemory-policy is {policy}, not noeviction: ledger keys can be evicted")
if persistence != "RDB":
    problems.append(f"persistence is {persistence}, not RDB: losing both nodes empties the ledger")
for problem in problems:
    print(problem, file=sys.stderr)
if problems:
    sys.exit(1)
print("maxmemory-policy noeviction, RDB snapshots: REDIS_EVICTION_POLICY_VERIFIED=true holds")
PYTHON
    ;;
  *) usage ;;
esac
