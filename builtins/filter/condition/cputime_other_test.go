//go:build !linux

package condition

import "time"

func threadCPU() time.Duration { return 0 }
