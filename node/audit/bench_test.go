package audit_test

import (
	"fmt"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/hsmsim/hsmsim/node/audit"
)

// BenchmarkRecord measures Record with fsync on, one writer and 32 concurrent writers (the
// node's CreateKey benchmark's load). Run it on the disk the HSMs' data directories use.
func BenchmarkRecord(b *testing.B) {
	for _, writers := range []int{1, 32} {
		b.Run(fmt.Sprintf("writers-%d", writers), func(b *testing.B) {
			l, err := audit.Open(filepath.Join(b.TempDir(), "audit.log"), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			var next atomic.Int64
			// RunParallel starts parallelism × GOMAXPROCS goroutines.
			procs := runtime.GOMAXPROCS(0)
			b.SetParallelism((writers + procs - 1) / procs)
			b.ResetTimer()
			if writers == 1 {
				for i := range b.N {
					if err := l.Record(event(i)); err != nil {
						b.Fatal(err)
					}
				}
				return
			}
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := l.Record(event(int(next.Add(1)))); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
