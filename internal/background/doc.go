// Package background runs work that trails the request path (Nodus's own
// traces, written in batches) on an OS thread of lower scheduling
// priority, so that when the cores are contended the kernel runs request
// handling first.
//
// On a small machine a batch of a few hundred traced calls keeps one core
// busy for milliseconds. At the same priority as request handling, a
// request that arrives meanwhile can wait that long for a core; measured
// on two vCPUs (docs/benchmarks.md), the gateway's added p99 at 250 req/s
// open loop fell with the trace recorder's light batches written at
// nice 10.
//
// The priority is the thread's, not the goroutine's: Lower locks the
// calling goroutine to its thread for good. Go ends a locked thread when
// its goroutine returns, so the lowered thread never runs other
// goroutines; an unprivileged process could not raise its priority again.
//
// A lowered thread that the kernel has set aside still holds one of Go's
// Ps while it runs Go code, so a server that lowers one should run with a
// P more than it has cores (ExtraProcs). And the garbage collector's
// stop-the-world phases wait for it: a lowered goroutine should work only
// while the cores have room, and hand larger work to Normal.
package background
