package bench

import (
	"math"
	"math/bits"
	"sort"
)

// hist is a log-linear latency histogram: exact below 128 ns, then 64
// buckets per power of two (under 1.6% relative error), so the workers can
// send their whole distribution to the parent in a few hundred numbers and
// the parent can merge processes before taking percentiles.
type hist struct {
	Counts map[int]int64 `json:"counts"` // bucket -> samples
	N      int64         `json:"n"`
	Max    int64         `json:"max"`
	Sum    float64       `json:"sum"`
}

const histSub = 64

func newHist() *hist { return &hist{Counts: map[int]int64{}} }

func bucketOf(v int64) int {
	if v < 2*histSub {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - 7 // v>>shift in [64, 128)
	return 2*histSub + (shift-1)*histSub + int(v>>shift) - histSub
}

// valueOf is the middle of bucket b.
func valueOf(b int) float64 {
	if b < 2*histSub {
		return float64(b)
	}
	shift := (b-2*histSub)/histSub + 1
	lo := int64((b-2*histSub)%histSub+histSub) << shift
	return float64(lo) + float64(int64(1)<<shift)/2
}

func (h *hist) add(v int64) {
	h.Counts[bucketOf(v)]++
	h.N++
	h.Sum += float64(v)
	if v > h.Max {
		h.Max = v
	}
}

func (h *hist) merge(o *hist) {
	for b, c := range o.Counts {
		h.Counts[b] += c
	}
	h.N += o.N
	h.Sum += o.Sum
	h.Max = max(h.Max, o.Max)
}

// quantile returns the q-quantile (0 < q <= 1) in ns; the maximum is exact.
func (h *hist) quantile(q float64) float64 {
	if h.N == 0 {
		return math.NaN()
	}
	if q >= 1 {
		return float64(h.Max)
	}
	keys := make([]int, 0, len(h.Counts))
	for b := range h.Counts {
		keys = append(keys, b)
	}
	sort.Ints(keys)
	rank := int64(math.Ceil(q * float64(h.N)))
	var seen int64
	for _, b := range keys {
		seen += h.Counts[b]
		if seen >= rank {
			return min(valueOf(b), float64(h.Max))
		}
	}
	return float64(h.Max)
}

// summary is a figure measured once per repetition: its median and spread.
type summary struct {
	Median float64   `json:"median"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	Q1     float64   `json:"q1"`
	Q3     float64   `json:"q3"`
	Reps   []float64 `json:"reps"`
}

func summarize(xs []float64) summary {
	if len(xs) == 0 {
		return summary{Median: math.NaN(), Min: math.NaN(), Max: math.NaN(), Q1: math.NaN(), Q3: math.NaN()}
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return summary{Median: quantileSorted(s, 0.5), Min: s[0], Max: s[len(s)-1],
		Q1: quantileSorted(s, 0.25), Q3: quantileSorted(s, 0.75), Reps: xs}
}

// quantileSorted interpolates linearly between the order statistics.
func quantileSorted(s []float64, q float64) float64 {
	if len(s) == 1 {
		return s[0]
	}
	pos := q * float64(len(s)-1)
	i := int(pos)
	if i >= len(s)-1 {
		return s[len(s)-1]
	}
	f := pos - float64(i)
	return s[i]*(1-f) + s[i+1]*f
}

func median(xs []float64) float64 { return summarize(xs).Median }
