# secretgate — build, run, test, bench, proto, lint.
GO        ?= go
BIN       ?= bin/secretgate
VAULT_BIN ?= .bin/vault
STATICCHECK_VERSION ?= v0.8.2

.PHONY: build run test bench proto lint testservers clean

build:
	$(GO) build -o $(BIN) ./cmd/secretgate

# The embedded default: file backend under ./.secretgate/, project "default",
# an admin token printed on start.
run: build
	./$(BIN) server --dev

# Integration tests need the real Vault server (built by `testservers`) and
# moto_server on PATH; both are started by the tests themselves.
test: testservers
	$(GO) test -race -timeout 30m ./...

# Go benchmarks (ns/op, allocs/op), then a load run with 32 concurrent
# clients against the real gateway next to a bare gin baseline and a Vault
# dev server (KV v2, in memory; the one `testservers` builds) under the same
# GET and PUT load, each gateway figure printed as a ratio to both, POST
# /v1/resolve of 20 references against GETs of the same secrets, the
# migration throughput (secrets/s) of 1,000 secrets from a file backend to
# another file backend and to a real Vault (the one `testservers` builds:
# nothing to do once it is built), and 10,000 event-stream watchers on one
# gateway (memory per watcher, fan-out latency of 20 writes, backend calls;
# the load test raises its open-file limit to the hard limit, which must
# allow 10,512). With Debian's PostgreSQL 15 installed (apt-get install
# postgresql; the load test starts its own server on a free loopback port,
# as the postgres user when run as root), also the same GET, LIST and PUT
# load against a gateway on the postgres backend, each row next to the file
# backend's and as a multiple of it, and GET and PUT load spread round-robin
# over 1, 2 and 3 gateway replicas on one PostgreSQL; without it both are
# skipped, saying why.
bench: build testservers
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2000x ./sdk/... ./policy/... ./plugins/file/... ./plugins/postgres/... ./idtoken/...
	$(GO) test -run '^$$' -bench 'AuthStaticVsJWT|Reload100|Resolve20' -benchmem -benchtime 3000x ./gateway/
	$(GO) test -run '^$$' -bench ReadCacheGET -benchtime 5s ./internal/e2e/
	$(GO) run ./internal/loadtest -bin $(BIN) -workers 32 -duration 10s -vault-bin $(VAULT_BIN) -migrate-secrets 1000 -watchers 10000 -fanout-writes 20 -replicas 3

# Regenerates sdk/plugin/proto with Debian's protoc and the Go plugins pinned as
# tool dependencies in go.mod.
proto:
	@command -v protoc >/dev/null || { echo "protoc missing: apt-get install protobuf-compiler"; exit 1; }
	mkdir -p .bin
	$(GO) build -o .bin/protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go
	$(GO) build -o .bin/protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc
	protoc --plugin=protoc-gen-go=.bin/protoc-gen-go --plugin=protoc-gen-go-grpc=.bin/protoc-gen-go-grpc \
		-I sdk/plugin/proto --go_out=sdk/plugin/proto --go_opt=paths=source_relative \
		--go-grpc_out=sdk/plugin/proto --go-grpc_opt=paths=source_relative \
		sdk/plugin/proto/backend.proto

lint:
	test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

# A real Vault 1.21.0 server built from Vault's own module (a separate go.mod
# under internal/testservers/vault): ~12 minutes on 2 cores the first time,
# seconds when cached.
testservers: $(VAULT_BIN)

$(VAULT_BIN): internal/testservers/vault/go.mod internal/testservers/vault/main.go
	mkdir -p $(dir $(VAULT_BIN))
	cd internal/testservers/vault && $(GO) build -o $(abspath $(VAULT_BIN)) .

clean:
	rm -rf bin .bin
