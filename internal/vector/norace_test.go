//go:build !race

package vector

// raceEnabled shrinks the large tests under the race detector, which
// slows them about tenfold.
const raceEnabled = false
