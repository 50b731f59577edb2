package main

import (
	"math"
	"slices"
)

// median of xs; NaN when xs is empty. xs is not modified.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

// ratios returns with[i]/without[i] for each round.
func ratios(with, without []float64) []float64 {
	n := min(len(with), len(without))
	r := make([]float64, n)
	for i := range n {
		r[i] = with[i] / without[i]
	}
	return r
}

// spread is the smallest and largest value of xs; NaNs when xs is empty.
func spread(xs []float64) (lo, hi float64) {
	if len(xs) == 0 {
		return math.NaN(), math.NaN()
	}
	return slices.Min(xs), slices.Max(xs)
}

// medianInt is the median of counts, rounded down.
func medianInt(xs []int) int {
	f := make([]float64, len(xs))
	for i, x := range xs {
		f[i] = float64(x)
	}
	if len(f) == 0 {
		return 0
	}
	return int(median(f))
}
