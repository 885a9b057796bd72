# ning: one static binary on distroless/static, running as the nonroot user
# (65532). Build with `make image` (Docker or Podman with BuildKit); for
# several platforms: docker buildx build --platform linux/amd64,linux/arm64 .
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG TARGETOS=linux
ARG TARGETARCH
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags="-s -w" -o /out/ning ./cmd/ning

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.source="https://github.com/ning-edge/ning" \
      org.opencontainers.image.version="$VERSION" \
      org.opencontainers.image.description="ning: latency-aware scheduling for Kubernetes edge clusters"
COPY --from=build /out/ning /usr/local/bin/ning
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/ning"]
