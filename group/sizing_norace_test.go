//go:build !race

package group

// raceEnabled tells tests that replay long traces that the race detector slows them tenfold.
const raceEnabled = false
