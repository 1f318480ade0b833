package loadgen

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// nearestRank is the exact nearest-rank percentile of sorted values.
func nearestRank(sorted []time.Duration, q float64) time.Duration {
	rank := int(math.Ceil(q / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

func TestBucketsCoverEveryValue(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	values := []uint64{0, 1, 127, 128, 255, 256, 257, 1000, 1 << 20, maxValue - 1, maxValue}
	for range 10000 {
		values = append(values, rng.Uint64N(maxValue))
	}
	for _, v := range values {
		i := bucketOf(v)
		require.Less(t, i, numBuckets, "value %d", v)
		lo, hi := bucketBounds(i)
		require.LessOrEqual(t, lo, v, "value %d bucket %d", v, i)
		require.GreaterOrEqual(t, hi, v, "value %d bucket %d", v, i)
		if v >= 2*subCount {
			require.LessOrEqual(t, float64(hi-lo+1)/float64(lo), 1.0/float64(subCount), "bucket %d too wide", i)
		}
	}
	// Buckets are contiguous and increasing.
	for i := 1; i < numBuckets; i++ {
		_, prevHi := bucketBounds(i - 1)
		lo, _ := bucketBounds(i)
		require.Equal(t, prevHi+1, lo, "bucket %d", i)
	}
}

func TestPercentiles(t *testing.T) {
	tests := []struct {
		name   string
		values func(rng *rand.Rand) []time.Duration
	}{
		{"1 to 100 ns", func(*rand.Rand) []time.Duration {
			var v []time.Duration
			for i := 1; i <= 100; i++ {
				v = append(v, time.Duration(i))
			}
			return v
		}},
		{"one value", func(*rand.Rand) []time.Duration { return []time.Duration{3 * time.Millisecond} }},
		{"uniform 0.1 to 10 ms", func(rng *rand.Rand) []time.Duration {
			v := make([]time.Duration, 50000)
			for i := range v {
				v[i] = 100*time.Microsecond + time.Duration(rng.Int64N(int64(10*time.Millisecond)))
			}
			return v
		}},
		{"long tail", func(rng *rand.Rand) []time.Duration {
			v := make([]time.Duration, 20000)
			for i := range v {
				v[i] = time.Duration(rng.ExpFloat64() * float64(2*time.Millisecond))
				if i%1000 == 0 {
					v[i] = 3 * time.Second
				}
			}
			return v
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			values := tt.values(rand.New(rand.NewPCG(5, 6)))
			var h Histogram
			for _, v := range values {
				h.Record(v)
			}
			sorted := slices.Sorted(slices.Values(values))
			require.Equal(t, uint64(len(values)), h.Count())
			require.Equal(t, sorted[len(sorted)-1], h.Max())
			require.Equal(t, sorted[0], h.Min())
			for _, q := range []float64{0, 1, 50, 90, 99, 99.9, 100} {
				exact, got := nearestRank(sorted, q), h.Percentile(q)
				require.GreaterOrEqual(t, got, exact, "p%v", q)
				require.LessOrEqual(t, float64(got-exact), float64(exact)/float64(subCount)+1, "p%v: got %v, exact %v", q, got, exact)
			}
		})
	}
}

func TestPercentileExactSmallValues(t *testing.T) {
	var h Histogram
	for i := 1; i <= 100; i++ {
		h.Record(time.Duration(i))
	}
	require.Equal(t, time.Duration(50), h.Percentile(50))
	require.Equal(t, time.Duration(90), h.Percentile(90))
	require.Equal(t, time.Duration(99), h.Percentile(99))
	require.Equal(t, time.Duration(100), h.Percentile(100))
	require.Equal(t, time.Duration(1), h.Percentile(0))
	require.Equal(t, time.Duration(50), h.Mean()) // 5050/100, truncated
}

func TestHistogramMergeAndEdges(t *testing.T) {
	var empty Histogram
	require.Zero(t, empty.Percentile(50))
	require.Zero(t, empty.Mean())
	require.Equal(t, Latency{}, empty.Summary())

	var a, b, all Histogram
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range 10000 {
		d := time.Duration(rng.Int64N(int64(50 * time.Millisecond)))
		all.Record(d)
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	var merged Histogram
	merged.Merge(&a)
	merged.Merge(&empty)
	merged.Merge(&b)
	require.Equal(t, all, merged)

	var h Histogram
	h.Record(-time.Second)
	h.Record(time.Duration(math.MaxInt64))
	require.Equal(t, time.Duration(0), h.Min())
	require.Equal(t, time.Duration(maxValue), h.Max(), "values beyond the range are clamped")
}

func BenchmarkRecord(b *testing.B) {
	var h Histogram
	d := 1234567 * time.Nanosecond
	for b.Loop() {
		h.Record(d)
		d += 997
	}
}
