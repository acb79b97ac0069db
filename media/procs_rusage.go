//go:build linux || darwin || freebsd || netbsd || openbsd

package media

import (
	"syscall"
	"time"
)

// processCPUKnown says processCPU reads the process's CPU time here.
const processCPUKnown = true

// processCPU is the CPU time (user and system) the process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
