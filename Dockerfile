# syntax=docker/dockerfile:1
#
# groupcached as a container image: a static binary on distroless, running as a non-root user.
#
#   docker build -t groupcached .
#   docker run --rm -p 8080:8080 -p 7946:7946 -p 7946:7946/udp \
#     -v "$PWD/examples/kubernetes/config.yaml:/etc/groupcached/config.yaml:ro" groupcached
#
# The image has no configuration of its own: mount one at /etc/groupcached/config.yaml (or
# point GROUPCACHED_CONFIG or -config elsewhere). It must listen on 0.0.0.0, not on the
# embedded default's 127.0.0.1, to be reachable from outside the container. Secrets come from
# the environment: GROUPCACHED_SECRET_KEY (gossip encryption), GROUPCACHED_ADMIN_TOKEN.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
# Modules first, so that a change to the sources does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# CGO_ENABLED=0: a static binary that needs no libc in the final image (the SQL drivers are
# pure Go). -trimpath: no build-machine paths in the binary or its stack traces.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/groupcached . && \
    /out/groupcached -h >/dev/null

# distroless/static: CA certificates (for https origins), tzdata, /etc/passwd with the
# nonroot user (65532), and nothing else: no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/groupcached /usr/local/bin/groupcached
USER 65532:65532
ENV GROUPCACHED_CONFIG=/etc/groupcached/config.yaml
# HTTP: client API, peer API, /healthz, /readyz, /metrics. Gossip: memberlist, TCP and UDP.
EXPOSE 8080/tcp 7946/tcp 7946/udp
ENTRYPOINT ["/usr/local/bin/groupcached"]
