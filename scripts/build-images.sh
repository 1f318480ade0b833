#!/usr/bin/env bash
# Builds the images hsmsim/hsmd, hsmsim/kmsproxy and hsmsim/hsmctl (tag
# $IMAGE_TAG, default dev) from static binaries built here, FROM scratch
# (deploy/Dockerfile): nothing is pulled, so it works without a registry.
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${IMAGE_TAG:-dev}
go=${GO:-go}

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
echo "building static binaries"
CGO_ENABLED=0 "$go" build -trimpath -buildvcs=false -ldflags='-s -w -buildid=' -o "$ctx/" ./cmd/hsmd ./cmd/kmsproxy ./cmd/hsmctl

# The directories the images need (see deploy/Dockerfile), and a passwd
# entry for uid 65532.
mkdir -p "$ctx/rootfs/etc" "$ctx/rootfs/dirs/"{tmp,data,slot,deploy,provision}
chmod 1777 "$ctx/rootfs/dirs/tmp"
chmod 0700 "$ctx/rootfs/dirs/"{data,slot,deploy,provision}
printf 'root:x:0:0:root:/:/nonexistent\nhsmsim:x:65532:65532:hsmsim:/deploy:/nonexistent\n' > "$ctx/rootfs/etc/passwd"
printf 'root:x:0:\nhsmsim:x:65532:\n' > "$ctx/rootfs/etc/group"

for image in hsmd kmsproxy hsmctl; do
  echo "building hsmsim/$image:$tag"
  # The classic builder warns that it is deprecated on stderr: show its
  # output only when it fails.
  if ! out=$(docker build --quiet --target "$image" --tag "hsmsim/$image:$tag" --file deploy/Dockerfile "$ctx" 2>&1); then
    echo "$out" >&2
    exit 1
  fi
done
docker images --format '{{.Repository}}:{{.Tag}}  {{.Size}}' | grep "^hsmsim/.*:$tag " | sort
