// Command taskstore is a task store on groupcached, the kind of program that puts values
// into the cache instead of reading them through a loader: tasks are Set with an expiry on
// one node, read with Get from another, gone after their TTL, and removed with Remove.
//
// Two httpapi.Nodes run in one process on loopback. The group's loader knows no tasks: a task
// exists only while the cache holds it, so a Get after its expiry (or after Remove) is
// group.ErrNotFound. A Set goes to the task's owner, wherever it is called.
//
//	go run ./examples/taskstore
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"github.com/groupcached/groupcached/group"
	"github.com/groupcached/groupcached/httpapi"
)

// Task is what the store keeps, as JSON.
type Task struct {
	ID    string `json:"id"`
	Title string `json:"title"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Stdout, 2*time.Second); err != nil {
		fmt.Fprintln(os.Stderr, "taskstore:", err)
		os.Exit(1)
	}
}

// noOrigin is the loader of a group whose values are only ever Set: every miss is not found.
func noOrigin(_ context.Context, key string) (group.Value, error) {
	return group.Value{}, fmt.Errorf("task %q: %w", key, group.ErrNotFound)
}

func startNode(ctx context.Context, name string, seeds []string) (*httpapi.Node, *group.Group, error) {
	logger := slog.New(slog.DiscardHandler)
	cfg := group.DefaultConfig()
	cfg.NegativeTTL = 0 // a task Set right after a miss must be seen at once
	g, err := group.New("tasks", group.LoaderFunc(noOrigin), cfg, logger)
	if err != nil {
		return nil, nil, err
	}
	ncfg := httpapi.LocalNodeConfig()
	ncfg.Name, ncfg.Cluster.Seeds, ncfg.Logger = name, seeds, logger
	n, err := httpapi.NewNode(ncfg, []*group.Group{g})
	if err != nil {
		return nil, nil, err
	}
	return n, g, n.Start(ctx)
}

// run stores three tasks with expiry ttl on one node, reads them on the other, waits for them
// to expire, and removes one stored again.
func run(ctx context.Context, out io.Writer, ttl time.Duration) (err error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var nodes []*httpapi.Node
	defer func() {
		for _, n := range nodes {
			err = errors.Join(err, n.Stop(context.Background()))
		}
	}()
	var groups []*group.Group
	for i := range 2 {
		var seeds []string
		if i > 0 {
			seeds = []string{nodes[0].Cluster().GossipAddr()}
		}
		n, g, err := startNode(ctx, fmt.Sprintf("node-%d", i+1), seeds)
		if n != nil {
			nodes = append(nodes, n)
		}
		if err != nil {
			return err
		}
		groups = append(groups, g)
	}
	for _, n := range nodes {
		if err := n.WaitMembers(ctx, len(nodes)); err != nil {
			return err
		}
	}
	writer, reader := groups[0], groups[1]

	tasks := []Task{{"t1", "write the report"}, {"t2", "review the patch"}, {"t3", "water the plants"}}
	for _, t := range tasks {
		b, _ := json.Marshal(t)
		if _, err := writer.Set(ctx, t.ID, b, ttl); err != nil {
			return fmt.Errorf("setting task %s: %w", t.ID, err)
		}
	}
	fmt.Fprintf(out, "set %d tasks on node-1, each for %v\n", len(tasks), ttl)
	for _, t := range tasks {
		res, err := reader.Get(ctx, t.ID)
		if err != nil {
			return fmt.Errorf("getting task %s on node-2: %w", t.ID, err)
		}
		var got Task
		if err := json.Unmarshal(res.Bytes, &got); err != nil || got != t {
			return fmt.Errorf("task %s on node-2 is %q, want %+v", t.ID, res.Bytes, t)
		}
		fmt.Fprintf(out, "node-2 has %s %q, %v left\n", got.ID, got.Title, res.TTL.Round(100*time.Millisecond))
	}

	// Expiry: poll until every task is gone, within twice its TTL.
	deadline := time.Now().Add(2 * ttl)
	for _, t := range tasks {
		for {
			_, err := reader.Get(ctx, t.ID)
			if errors.Is(err, group.ErrNotFound) {
				break
			}
			if err != nil {
				return err
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("task %s still there %v after it was set for %v", t.ID, 2*ttl, ttl)
			}
			select {
			case <-time.After(50 * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	fmt.Fprintln(out, "all tasks expired")

	b, _ := json.Marshal(tasks[0])
	if _, err := reader.Set(ctx, tasks[0].ID, b, time.Hour); err != nil {
		return err
	}
	if _, err := writer.Get(ctx, tasks[0].ID); err != nil {
		return fmt.Errorf("task set again on node-2, read on node-1: %w", err)
	}
	if _, err := writer.Remove(ctx, tasks[0].ID); err != nil {
		return err
	}
	if _, err := reader.Get(ctx, tasks[0].ID); !errors.Is(err, group.ErrNotFound) {
		return fmt.Errorf("task %s after Remove: %v, want not found", tasks[0].ID, err)
	}
	fmt.Fprintf(out, "task %s set again for 1h, then removed: gone on both nodes\n", tasks[0].ID)
	return nil
}
