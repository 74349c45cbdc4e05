//go:build race

package peers

// raceDetector is true when the tests run under -race, which makes CPU-bound code (a ring
// build) about ten times slower.
const raceDetector = true
