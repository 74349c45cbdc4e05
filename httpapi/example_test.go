package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/groupcached/groupcached/group"
	"github.com/groupcached/groupcached/httpapi"
)

// greetings is a group over a loader that greets the key.
func greetings(logger *slog.Logger) *group.Group {
	g, err := group.New("greetings", group.LoaderFunc(func(_ context.Context, key string) (group.Value, error) {
		return group.Value{Bytes: []byte("hello, " + strings.ToUpper(key))}, nil
	}), group.DefaultConfig(), logger)
	if err != nil {
		panic(err)
	}
	return g
}

// get reads url and prints the answer.
func get(url string) {
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Printf("%d %s (from %s, %s)\n", resp.StatusCode, body,
		resp.Header.Get("X-Groupcached-Source"), resp.Header.Get("Cache-Control"))
}

// A node alone (no cluster) serving one group over HTTP, and a client reading a key whose
// bytes include a slash and a space.
func Example() {
	logger := slog.New(slog.DiscardHandler)
	cfg := httpapi.LocalNodeConfig() // 127.0.0.1, a port the kernel picks
	cfg.Cluster = nil
	cfg.Logger = logger
	node, err := httpapi.NewNode(cfg, []*group.Group{greetings(logger)})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	if err := node.Start(ctx); err != nil {
		panic(err)
	}
	defer node.Stop(ctx)

	url := "http://" + node.Addr() + "/groups/greetings/keys/" + httpapi.EscapeKey("new york/ny")
	get(url)
	get(url)
	// Output:
	// 200 hello, NEW YORK/NY (from loader, max-age=60)
	// 200 hello, NEW YORK/NY (from main, max-age=60)
}

// Two nodes in a cluster: the second joins the first, both wait until their rings hold both,
// and then agree on the owner of every key. Asked of the node that does not own it, a key is
// fetched from its owner.
func ExampleNode_WaitMembers() {
	logger := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var nodes []*httpapi.Node
	for _, name := range []string{"node-a", "node-b"} {
		cfg := httpapi.LocalNodeConfig()
		cfg.Name = name
		cfg.Logger = logger
		if len(nodes) > 0 {
			cfg.Cluster.Seeds = []string{nodes[0].Cluster().GossipAddr()}
		}
		node, err := httpapi.NewNode(cfg, []*group.Group{greetings(logger)})
		if err != nil {
			panic(err)
		}
		if err := node.Start(ctx); err != nil {
			panic(err)
		}
		defer node.Stop(context.Background())
		nodes = append(nodes, node)
	}
	for _, node := range nodes {
		if err := node.WaitMembers(ctx, len(nodes)); err != nil {
			panic(err)
		}
	}

	a, b := nodes[0].Cluster(), nodes[1].Cluster()
	fmt.Println("both rings:", a.RingMembers(), b.RingMembers())
	key := "berlin"
	fmt.Println("they agree on the owner:", a.Owner(key) == b.Owner(key))
	notOwner := nodes[0]
	if a.Owner(key) == "node-a" {
		notOwner = nodes[1]
	}
	get("http://" + notOwner.Addr() + "/groups/greetings/keys/" + key)
	// Output:
	// both rings: [node-a node-b] [node-a node-b]
	// they agree on the owner: true
	// 200 hello, BERLIN (from peer, max-age=60)
}

// A middleware in Config.Middleware sees every request: here, one that stamps the node's name
// on every answer, the key fast path's and the peers' included.
func ExampleConfig_middleware() {
	logger := slog.New(slog.DiscardHandler)
	cfg := httpapi.LocalNodeConfig()
	cfg.Cluster = nil
	cfg.Logger = logger
	cfg.API.Middleware = append(cfg.API.Middleware, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Served-By", "local")
			next.ServeHTTP(w, r)
		})
	})
	node, err := httpapi.NewNode(cfg, []*group.Group{greetings(logger)})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	if err := node.Start(ctx); err != nil {
		panic(err)
	}
	defer node.Stop(ctx)

	client := &http.Client{Timeout: 10 * time.Second}
	for _, path := range []string{"/groups/greetings/keys/x", "/healthz", "/no/such/route"} {
		resp, err := client.Get("http://" + node.Addr() + path)
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
		fmt.Println(resp.StatusCode, path, "served by", resp.Header.Get("X-Served-By"))
	}
	// Output:
	// 200 /groups/greetings/keys/x served by local
	// 200 /healthz served by local
	// 404 /no/such/route served by local
}

// A node whose removes and purges need an admin token: without it a DELETE is answered 401,
// with it the key is removed. Reads never need it.
func ExampleConfig_adminToken() {
	logger := slog.New(slog.DiscardHandler)
	cfg := httpapi.LocalNodeConfig()
	cfg.Cluster = nil
	cfg.Logger = logger
	cfg.API.AdminToken = "an-admin-token-from-a-secret-store" // in production: os.Getenv("GROUPCACHED_ADMIN_TOKEN")
	node, err := httpapi.NewNode(cfg, []*group.Group{greetings(logger)})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	if err := node.Start(ctx); err != nil {
		panic(err)
	}
	defer node.Stop(ctx)

	url := "http://" + node.Addr() + "/groups/greetings/keys/paris"
	client := &http.Client{Timeout: 10 * time.Second}
	for _, token := range []string{"", "a-guess", cfg.API.AdminToken} {
		req, _ := http.NewRequest(http.MethodDelete, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%d %s", resp.StatusCode, body)
	}
	get(url)
	// Output:
	// 401 {"error":"this request changes the cache: it needs the admin token in an Authorization: Bearer header","code":"unauthorized"}
	// 401 {"error":"the admin token is not valid","code":"unauthorized"}
	// 200 {"group":"greetings","key":"paris","peers_confirmed":0,"peers":0}
	// 200 hello, PARIS (from loader, max-age=60)
}
