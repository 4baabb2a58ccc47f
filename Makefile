# Extra flags for go test, e.g.: make test TESTFLAGS='-run Foo -v'
TESTFLAGS ?=
export TESTFLAGS

.PHONY: test run build bench fmt vet

test:
	./scripts/test.sh

run:
	go run ./cmd/nodus serve

build:
	go build -o bin/nodus ./cmd/nodus

bench:
	go run ./bench

fmt:
	go fmt ./...

vet:
	go vet ./...
