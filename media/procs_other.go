//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package media

import "time"

// processCPUKnown is false where the process's CPU time is not read:
// GOMAXPROCS is not adapted there (a policy reading no CPU would keep
// the SFU on one processor).
const processCPUKnown = false

func processCPU() time.Duration { return 0 }
