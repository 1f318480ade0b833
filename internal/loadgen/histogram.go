package loadgen

import (
	"math"
	"math/bits"
	"time"
)

// The histogram's layout, after HdrHistogram: values below subCount
// nanoseconds have a bucket each; above, every power of two [2^e, 2^(e+1))
// is split into subCount/2 equal buckets, so a bucket's width is at most
// 1/128 of its values: a percentile is within 0.8% of the exact one.
const (
	subBits  = 7
	subCount = 1 << subBits
	// maxValue is the largest value recorded as itself (about 18 minutes);
	// larger ones are clamped to it.
	maxValue = 1<<40 - 1
	// numBuckets covers every value up to maxValue.
	numBuckets = (40-subBits+1)<<subBits + subCount
)

// Histogram records latencies with a bounded relative error, in constant
// memory and without allocating. The zero value is ready. It is not safe
// for concurrent use: give each worker its own and Merge them.
type Histogram struct {
	counts [numBuckets]uint64
	total  uint64
	sum    uint64
	min    uint64
	max    uint64
}

// bucketOf is the index of v's bucket.
func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	e := bits.Len64(v) - 1 // v is in [2^e, 2^(e+1)), e >= subBits
	shift := e - subBits
	return (shift+1)<<subBits + int(v>>shift) - subCount
}

// bucketBounds are the smallest and largest values of bucket i.
func bucketBounds(i int) (lo, hi uint64) {
	if i < subCount {
		return uint64(i), uint64(i)
	}
	shift := i>>subBits - 1
	sub := uint64(i - (shift+1)<<subBits + subCount)
	lo = sub << shift
	return lo, lo + 1<<shift - 1
}

// Record adds one latency; negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	v := uint64(max(d, 0))
	v = min(v, maxValue)
	h.counts[bucketOf(v)]++
	if h.total == 0 || v < h.min {
		h.min = v
	}
	h.max = max(h.max, v)
	h.total++
	h.sum += v
}

// Merge adds every value of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.total == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.total == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.total += o.total
	h.sum += o.sum
}

// Count is the number of values recorded.
func (h *Histogram) Count() uint64 { return h.total }

// Max is the largest value recorded, exactly (0 when empty).
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Min is the smallest value recorded, exactly (0 when empty).
func (h *Histogram) Min() time.Duration { return time.Duration(h.min) }

// Mean is the mean of the values recorded (0 when empty).
func (h *Histogram) Mean() time.Duration {
	if h.total == 0 {
		return 0
	}
	return time.Duration(h.sum / h.total)
}

// Percentile returns the value below or at which q percent (0 to 100) of
// the values lie, by nearest rank: the ceil(q/100·n)-th smallest value, to
// within the bucket's width (the bucket's largest value, capped by the
// exact maximum). It returns 0 when the histogram is empty.
func (h *Histogram) Percentile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q / 100 * float64(h.total)))
	rank = min(max(rank, 1), h.total)
	var seen uint64
	for i, c := range h.counts {
		if seen += c; seen >= rank {
			_, hi := bucketBounds(i)
			return time.Duration(min(max(hi, h.min), h.max))
		}
	}
	return time.Duration(h.max)
}

// Latency summarizes a histogram.
type Latency struct {
	P50  time.Duration `json:"p50_ns"`
	P90  time.Duration `json:"p90_ns"`
	P99  time.Duration `json:"p99_ns"`
	Max  time.Duration `json:"max_ns"`
	Mean time.Duration `json:"mean_ns"`
}

// Summary is h's p50, p90, p99, max and mean.
func (h *Histogram) Summary() Latency {
	return Latency{P50: h.Percentile(50), P90: h.Percentile(90), P99: h.Percentile(99), Max: h.Max(), Mean: h.Mean()}
}
