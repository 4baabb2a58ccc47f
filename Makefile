# Extra flags for go test, e.g.: make test TESTFLAGS='-run Foo -v'
TESTFLAGS ?=
export TESTFLAGS

# How long `make fuzz` runs each fuzz target.
FUZZTIME ?= 60s

.PHONY: test run build bench fuzz fmt vet

test:
	./scripts/test.sh

run:
	go run ./cmd/nodus serve

build:
	go build -o bin/nodus ./cmd/nodus

bench:
	go run ./bench

# Fuzz the Authorization header of authenticated routes (SECURITY.md
# check 10). The seeds also run in every `make test`.
fuzz:
	go test -run '^$$' -fuzz=FuzzAuthorizationHeader -fuzztime=$(FUZZTIME) ./internal/httpapi/

fmt:
	go fmt ./...

vet:
	go vet ./...
