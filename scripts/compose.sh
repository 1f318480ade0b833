#!/usr/bin/env bash
# The container deployment (deploy/compose.yaml) on this Docker host.
#
#   scripts/compose.sh up        start it, wait until the custom key store is
#                                CONNECTED, copy the credentials out, print
#                                how to use it (make compose-up)
#   scripts/compose.sh down      remove it: containers, networks, volumes
#                                (make compose-down)
#   scripts/compose.sh hsmctl ARGS...
#                                run hsmctl in a one-shot container on the
#                                deployment's networks, e.g.
#                                hsmctl compose status --dir /deploy
#   scripts/compose.sh ARGS...   any docker-compose command (ps, logs -f kmsproxy)
#
# Environment: COMPOSE_PROJECT (default hsmsim), HSMSIM_KMS_PORT (4599),
# IMAGE_TAG (dev), HSMSIM_COMPOSE_DIR (where `up` puts the credentials;
# default .hsmsim/compose in the checkout).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export COMPOSE_PROJECT=${COMPOSE_PROJECT:-hsmsim}
export HSMSIM_KMS_PORT=${HSMSIM_KMS_PORT:-4599}
export IMAGE_TAG=${IMAGE_TAG:-dev}
out=${HSMSIM_COMPOSE_DIR:-$root/.hsmsim/compose}

compose() {
  if command -v docker-compose > /dev/null; then
    docker-compose -p "$COMPOSE_PROJECT" -f "$root/deploy/compose.yaml" "$@"
  else
    docker compose -p "$COMPOSE_PROJECT" -f "$root/deploy/compose.yaml" "$@"
  fi
}

# cid prints the container id of a service (docker is quicker than compose).
cid() {
  docker ps -aq --filter "label=com.docker.compose.project=$COMPOSE_PROJECT" --filter "label=com.docker.compose.service=$1"
}

up() {
  for image in hsmd kmsproxy hsmctl; do
    docker image inspect "hsmsim/$image:$IMAGE_TAG" > /dev/null 2>&1 ||
      { echo "no image hsmsim/$image:$IMAGE_TAG: run make images" >&2; exit 1; }
  done
  if (exec 3<> "/dev/tcp/127.0.0.1/$HSMSIM_KMS_PORT") 2> /dev/null && [ -z "$(cid kmsproxy)" ]; then
    echo "127.0.0.1:$HSMSIM_KMS_PORT is in use (a local hsmctl up?): stop it or set HSMSIM_KMS_PORT" >&2
    exit 1
  fi
  # up -d returns once init has succeeded and the endpoint is healthy; the
  # key store's one-shot (connect) may still be running then.
  compose up -d
  connect=$(cid connect)
  status=$(docker wait "$connect")
  if [ "$status" != 0 ]; then
    docker logs "$(cid init)" >&2
    docker logs "$connect" >&2
    echo "connect exited with status $status (logs above; scripts/compose.sh logs for all)" >&2
    exit 1
  fi
  mkdir -p "$out"
  chmod 700 "$out"
  kmsproxy=$(cid kmsproxy)
  docker cp "$kmsproxy:/deploy/credentials" "$out/credentials"
  docker cp "$kmsproxy:/deploy/customerCA.crt" "$out/customerCA.crt"
  chmod 600 "$out/credentials"
  # What the one-shots printed (their logs went to stderr).
  echo
  docker logs "$(cid init)" 2> /dev/null
  echo
  docker logs "$connect" 2> /dev/null
  cat <<MSG

KMS endpoint:  http://127.0.0.1:$HSMSIM_KMS_PORT (the AWS KMS and CloudHSM v2 APIs, published on loopback only)
Trust anchor:  $out/customerCA.crt

export AWS_SHARED_CREDENTIALS_FILE=$out/credentials AWS_PROFILE=hsmsim AWS_DEFAULT_REGION=us-east-1

HSM side:  scripts/compose.sh hsmctl compose status --dir /deploy
Faults:    scripts/docker-fault.sh partition us-east-1b | pause hsmd-a1 | kill hsmd-a1 | heal
Stop:      make compose-down
MSG
}

case "${1:-}" in
  up) up ;;
  down)
    compose --profile tools down --volumes --remove-orphans
    rm -rf "$out"
    ;;
  hsmctl)
    shift
    compose run --rm hsmctl "$@"
    ;;
  "")
    sed -n '2,/^set -euo/p' "$0" | sed 's/^# \{0,1\}//' | head -n -1
    exit 2
    ;;
  *) compose "$@" ;;
esac
