//go:build !linux

package metrics

// registerProcess registers nothing outside Linux: the process metrics are
// read from /proc, and Nodus runs on Linux in production. The Go runtime
// metrics are still registered.
func registerProcess(r *Registry) {}
