package group_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"sync/atomic"

	"github.com/groupcached/groupcached/group"
)

// GetMany answers many keys at once, each as Get would: in order, a repeated key filled once,
// each key with its own error.
func ExampleGroup_GetMany() {
	var loads atomic.Int64 // GetMany loads missed keys concurrently
	origin := map[string]string{"alice": "admin", "bob": "reader"}
	roles := group.LoaderFunc(func(ctx context.Context, user string) (group.Value, error) {
		loads.Add(1)
		role, ok := origin[user]
		if !ok {
			return group.Value{}, group.ErrNotFound
		}
		return group.Value{Bytes: []byte(role)}, nil
	})
	g, err := group.New("roles", roles, group.DefaultConfig(), nil)
	if err != nil {
		log.Fatal(err)
	}
	users := []string{"alice", "carol", "bob", "alice"}
	for i, item := range g.GetMany(context.Background(), users) {
		switch {
		case errors.Is(item.Err, group.ErrNotFound):
			fmt.Printf("%s: no such user\n", users[i])
		case item.Err != nil:
			fmt.Printf("%s: %v\n", users[i], item.Err)
		default:
			fmt.Printf("%s: %s\n", users[i], item.Bytes)
		}
	}
	fmt.Println("origin loads:", loads.Load())
	// Output:
	// alice: admin
	// carol: no such user
	// bob: reader
	// alice: admin
	// origin loads: 3
}
