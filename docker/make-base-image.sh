#!/usr/bin/env bash
# Make a minimal Debian base image with Python 3.11 when no image registry is reachable:
# debootstrap a rootfs from a Debian mirror, then `docker import` it.
#
#   docker/make-base-image.sh [TAG] [MIRROR]      (as root; needs debootstrap and a Docker engine)
#
# TAG defaults to commbench-base:bookworm, MIRROR to http://deb.debian.org/debian. Build the
# commbench image on it with --build-arg BASE_IMAGE=TAG (docker/README.md). Bookworm's python3 is 3.11.
set -euo pipefail
tag=${1:-commbench-base:bookworm}
mirror=${2:-http://deb.debian.org/debian}
suite=${SUITE:-bookworm}

rootfs=$(mktemp -d "${TMPDIR:-/tmp}/commbench-rootfs.XXXXXX")
trap 'rm -rf "$rootfs"' EXIT

# minbase: essential packages + apt. python3-venv brings ensurepip (the Dockerfile makes a venv);
# ca-certificates gives the system bundle the image's pip and requests are pointed at.
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    "$suite" "$rootfs" "$mirror"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*

tar --numeric-owner -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    - "$tag"
echo "made $tag from $suite ($mirror)"
