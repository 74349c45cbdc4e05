package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"github.com/groupcached/groupcached/group"
	"github.com/groupcached/groupcached/httpapi"
)

// A single node (no cluster) serving one group over HTTP, and a client reading a key whose
// bytes include a slash and a space.
func Example() {
	logger := slog.New(slog.DiscardHandler)
	greetings, err := group.New("greetings", group.LoaderFunc(func(_ context.Context, key string) (group.Value, error) {
		return group.Value{Bytes: []byte("hello, " + strings.ToUpper(key))}, nil
	}), group.DefaultConfig(), logger)
	if err != nil {
		panic(err)
	}

	api, err := httpapi.New(httpapi.DefaultConfig(), []*group.Group{greetings}, nil, logger)
	if err != nil {
		panic(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := api.NewServer()
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	api.SetReady(true)

	url := "http://" + ln.Addr().String() + "/groups/greetings/keys/" + httpapi.EscapeKey("new york/ny")
	for range 2 {
		resp, err := http.Get(url)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%d %s (from %s, %s)\n", resp.StatusCode, body,
			resp.Header.Get("X-Groupcached-Source"), resp.Header.Get("Cache-Control"))
	}
	// Output:
	// 200 hello, NEW YORK/NY (from loader, no-cache)
	// 200 hello, NEW YORK/NY (from main, no-cache)
}
