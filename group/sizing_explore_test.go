package group

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"
)

func TestSizingExplore(t *testing.T) {
	if os.Getenv("EXPLORE") == "" {
		t.Skip()
	}
	nkeys, _ := strconv.Atoi(os.Getenv("NKEYS"))
	nreq, _ := strconv.Atoi(os.Getenv("NREQ"))
	capPct, _ := strconv.ParseFloat(os.Getenv("CAP"), 64)
	maxEntries, _ := strconv.Atoi(os.Getenv("M"))
	rate, _ := strconv.ParseFloat(os.Getenv("RATE"), 64)
	seeds, _ := strconv.Atoi(os.Getenv("SEEDS"))
	keys := make([]string, nkeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%07d", i)
	}
	value := make([]byte, 100)
	perEntry := int64(weight(keys[0], value))
	base := int64(float64(nkeys)*capPct) * perEntry
	start := time.Now()
	traces := map[string][]string{
		"zipf0.9": zipfTrace(keys, 0.9, nreq, 11),
		"scan":    scanTrace(keys, 0.9, nreq, nreq/10, int(float64(nkeys)*capPct*1.5), 12),
	}
	t.Logf("traces %v", time.Since(start))
	ratios := DefaultSizingRatios
	for name, trace := range traces {
		real := make([]float64, len(ratios))
		start := time.Now()
		for i, r := range ratios {
			c := newCache(int64(r*float64(base)), newClock())
			all, _ := replay(trace, value,
				func(k string) bool { var e entry; _, ok := c.get(k, &e); return ok },
				func(k string, v []byte) { c.add(k, entry{value: v}) })
			real[i] = all / 100
		}
		t.Logf("%s real %v  (%v)", name, real, time.Since(start))
		for seed := range seeds {
			start := time.Now()
			var n int64
			s, err := newSizer(SizingConfig{MaxEntries: maxEntries, MaxRate: rate}, base, func() int64 { return n })
			if err != nil {
				t.Fatal(err)
			}
			s.seed = uint64(seed)*0x1234567 + 99
			for _, k := range trace {
				n++
				s.observe(k, len(value))
			}
			est := s.estimate()
			line := fmt.Sprintf("%s seed %d sampled %d (%v):", name, seed, est.Sampled, time.Since(start))
			for i, z := range est.Sizes {
				line += fmt.Sprintf(" %.2fx %.4f (%+.4f r=1/%.0f e=%d)", z.Ratio, z.HitRatio, z.HitRatio-real[i], 1/z.Rate, z.Entries)
			}
			t.Log(line)
		}
	}
}
