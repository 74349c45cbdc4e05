//go:build unix

package httpapi

import "syscall"

// openFileLimit returns the process's soft limit on open files (Go raises it to the hard
// limit at start), and false when it cannot be read.
func openFileLimit() (uint64, bool) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, false
	}
	return r.Cur, true
}
