# syntax=docker/dockerfile:1
# Leadmarket's image: a static binary (CGO_ENABLED=0) on distroless, running as the unprivileged
# nonroot user. `docker build -t leadmarket .`; deploy/docker-compose.yml runs two instances of it.
# CI runs `docker build` when a Docker engine answers, and otherwise the same `go build` as the
# build stage below (.ci/run; deploy/deploy_test.go checks the two commands are the same).

FROM golang:1.26.8-bookworm AS build
WORKDIR /src
ENV GOTOOLCHAIN=local
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o bin/leadmarket ./cmd/leadmarket

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/bin/leadmarket /leadmarket
# Listen on every interface of the container; production settings unless overridden. Secrets,
# DATABASE_URL and REDIS_URL come from the environment at run time, never from the image.
ENV HTTP_ADDR=0.0.0.0:8080 \
    ENV=production \
    LOG_FORMAT=json
USER nonroot:nonroot
EXPOSE 8080
# distroless has no shell or curl: the binary asks its own /readyz.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["/leadmarket", "health"]
ENTRYPOINT ["/leadmarket"]
CMD ["serve"]
