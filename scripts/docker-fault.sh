#!/usr/bin/env bash
# Real faults on the container deployment (deploy/compose.yaml), made with
# Docker on its networks and containers (hsmctl fault makes them inside the
# HSMs' own transport instead). Run it on the Docker host.
#
#   docker-fault.sh partition AZ   disconnect the AZ's HSM containers from
#                                  inter-az: they keep only their AZ's network
#   docker-fault.sh isolate C      disconnect C from every network
#   docker-fault.sh pause C        docker pause (freeze every process of C)
#   docker-fault.sh resume C       docker unpause
#   docker-fault.sh kill C         docker kill (SIGKILL, as a crash)
#   docker-fault.sh start C        docker start (a killed HSM resumes from its data)
#   docker-fault.sh heal           reconnect, unpause and start every HSM container
#   docker-fault.sh list           the HSM containers: AZ, HSM, state, networks
#
# C is a container's service name (hsmd-a1) or the id of the HSM it holds
# (hsm-...). COMPOSE_PROJECT names the deployment (default hsmsim).
set -euo pipefail
project=${COMPOSE_PROJECT:-hsmsim}
inter=${project}_inter-az

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed 's/^# \{0,1\}//' | head -n -1 >&2
  exit 2
}

# hsm_containers lists the ids of the deployment's HSM containers.
hsm_containers() {
  docker ps -aq --filter "label=com.docker.compose.project=$project" --filter label=hsmsim.role=hsm
}
# inventory prints "id service az state networks..." per HSM container, with
# one docker inspect.
inventory() {
  local ids
  ids=$(hsm_containers)
  [ -n "$ids" ] || { echo "docker-fault: no HSM container in compose project $project" >&2; exit 1; }
  # shellcheck disable=SC2086
  docker inspect -f '{{.Id}} {{index .Config.Labels "com.docker.compose.service"}} {{index .Config.Labels "hsmsim.az"}} {{.State.Status}} {{range $name, $_ := .NetworkSettings.Networks}}{{$name}} {{end}}' $ids
}
networks_of() { docker inspect -f '{{range $name, $_ := .NetworkSettings.Networks}}{{$name}} {{end}}' "$1"; }
# hsm_of prints the HSM that holds the container (its slot's claim file).
hsm_of() { { docker cp "$1:/slot/claim" - 2> /dev/null | tar -xO 2> /dev/null || true; } | tr -d '\n'; }

# resolve prints "id service" of a service name or an HSM id.
resolve() {
  local id service _
  while read -r id service _; do
    if [ "$service" = "$1" ] || { [[ $1 == hsm-* ]] && [ "$(hsm_of "$id")" = "$1" ]; }; then
      echo "$id $service"
      return
    fi
  done < <(inventory)
  echo "docker-fault: no HSM container $1 in compose project $project" >&2
  exit 1
}

connected() { [[ " $(networks_of "$1") " == *" $2 "* ]]; }

# disconnect ID SERVICE NETWORK
disconnect() {
  if connected "$1" "$3"; then
    docker network disconnect "$3" "$1"
    echo "$2: disconnected from $3"
  fi
}

# reconnect ID SERVICE NETWORK joins a network again under the service's
# name, the name its peers dial.
reconnect() {
  if ! connected "$1" "$3"; then
    docker network connect --alias "$2" "$3" "$1"
    echo "$2: connected to $3"
  fi
}

cmd=${1:-}
[ -n "$cmd" ] || usage
shift
case "$cmd" in
  partition)
    [ $# -eq 1 ] || usage
    found=0
    while read -r id service az _; do
      if [ "$az" = "$1" ]; then
        disconnect "$id" "$service" "$inter"
        found=1
      fi
    done < <(inventory)
    [ $found = 1 ] || { echo "docker-fault: no HSM container in $1" >&2; exit 1; }
    ;;
  isolate)
    [ $# -eq 1 ] || usage
    read -r id service < <(resolve "$1")
    for net in $(networks_of "$id"); do disconnect "$id" "$service" "$net"; done
    ;;
  pause | resume | kill | start)
    [ $# -eq 1 ] || usage
    read -r id service < <(resolve "$1")
    verb=$cmd
    [ "$cmd" = resume ] && verb=unpause
    docker "$verb" "$id" > /dev/null
    echo "$service: $verb"
    ;;
  heal)
    while read -r id service az state _; do
      if [ "$state" = paused ]; then
        docker unpause "$id" > /dev/null
        echo "$service: unpause"
      fi
      reconnect "$id" "$service" "${project}_$az"
      reconnect "$id" "$service" "$inter"
      case "$state" in
        exited | created | dead)
          docker start "$id" > /dev/null
          echo "$service: start"
          ;;
      esac
    done < <(inventory)
    ;;
  list)
    printf '%-10s %-11s %-16s %-8s %s\n' CONTAINER AZ HSM STATE NETWORKS
    while read -r id service az state networks; do
      hsm=$(hsm_of "$id")
      printf '%-10s %-11s %-16s %-8s %s\n' "$service" "$az" "${hsm:-(unassigned)}" "$state" "${networks//${project}_/}"
    done < <(inventory) | sort
    ;;
  *) usage ;;
esac
