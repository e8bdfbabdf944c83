//go:build !linux

package pattern

import "time"

func threadCPU() time.Duration { return 0 }
