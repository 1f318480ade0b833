package cputime_test

import (
	"crypto/sha256"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/internal/cputime"
)

// TestSelfCounts checks that Self grows by the CPU work the process does:
// hashing 256 MiB takes well over 10 ms of CPU on any machine here.
func TestSelfCounts(t *testing.T) {
	before := cputime.Self()
	require.Positive(t, before, "a running process has used some CPU")
	buf := make([]byte, 1<<20)
	for range 256 {
		sum := sha256.Sum256(buf)
		buf[0] = sum[0]
	}
	require.GreaterOrEqual(t, cputime.Self()-before, 10*time.Millisecond)
}
