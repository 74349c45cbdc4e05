package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestRun runs the example's whole program: three nodes on loopback, concurrent Gets on each,
// and checks from its output that the backend loaded every key exactly once.
func TestRun(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	perKey := regexp.MustCompile(`(?m)^  (key-\d+): owner (node-\d), backend loads (\d+)$`).FindAllStringSubmatch(out.String(), -1)
	if len(perKey) != keyCount {
		t.Fatalf("output reports %d keys, want %d:\n%s", len(perKey), keyCount, out.String())
	}
	owners := map[string]bool{}
	for _, m := range perKey {
		owners[m[2]] = true
		if n, _ := strconv.Atoi(m[3]); n != 1 {
			t.Errorf("%s was loaded %d times, want once", m[1], n)
		}
	}
	if len(owners) < 2 {
		t.Errorf("every key is owned by %v: the keys are not spread over the cluster", owners)
	}
	for _, want := range []string{
		"cluster of 3 nodes: node-1, node-2, node-3",
		"the backend was asked 10 times for 10 keys",
		"missing-key: not found = true",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestRunCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out bytes.Buffer
	if err := run(ctx, &out); err == nil {
		t.Fatalf("run with a cancelled context succeeded:\n%s", out.String())
	}
}
