// Command benchserver serves one cached value two ways on 127.0.0.1, for scripts/bench-http.sh
// to compare under a load generator:
//
//   - full: an httpapi.Node serving alone (no cluster), the whole stack: its middleware chain
//     and recoverer, key routing and decoding, group.Group.Get, ETag, Cache-Control and source
//     headers, over one group whose key is already cached;
//   - bare: a bare chi route GET /groups/{group}/keys/{key} serving the same bytes from a map.
//
// Both listen on 127.0.0.1 ports from :0 behind http.Servers with the same timeouts (the
// node's httpapi.DefaultConfig, as httpapi's NewServer sets them), so the comparison measures
// the handler stack. -serve picks which of the two
// this process serves (bench-http.sh runs one process for each, so that it can read each
// one's CPU time). It prints "full URL" and/or "bare URL", one a line, then serves until
// SIGINT or SIGTERM, or until -max-run passes.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/groupcached/groupcached/group"
	"github.com/groupcached/groupcached/httpapi"
)

func main() {
	valueBytes := flag.Int("value-bytes", 1024, "size of the cached value")
	key := flag.String("key", "key-1", "the cached key")
	maxRun := flag.Duration("max-run", 10*time.Minute, "stop after this long even without a signal")
	serve := flag.String("serve", "full,bare", "which servers to run: full, bare or both")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchserver:", err)
			os.Exit(1)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	if err := run(*valueBytes, *key, *maxRun, strings.Split(*serve, ",")); err != nil {
		fmt.Fprintln(os.Stderr, "benchserver:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func run(valueBytes int, key string, maxRun time.Duration, serve []string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, maxRun)
	defer cancel()

	value := bytes.Repeat([]byte("v"), valueBytes)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg := httpapi.DefaultNodeConfig()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Cluster = nil
	cfg.ShutdownDelay = 0
	cfg.Logger = log
	path := "/groups/bench/keys/" + httpapi.EscapeKey(key)
	errc := make(chan error, 1)

	if slices.Contains(serve, "full") {
		g, err := group.New("bench", group.LoaderFunc(func(context.Context, string) (group.Value, error) {
			return group.Value{Bytes: value}, nil
		}), group.DefaultConfig(), log)
		if err != nil {
			return err
		}
		if _, err := g.Get(ctx, key); err != nil {
			return fmt.Errorf("preloading %q: %w", key, err)
		}
		n, err := httpapi.NewNode(cfg, []*group.Group{g})
		if err != nil {
			return err
		}
		defer func() { _ = n.Stop(context.Background()) }()
		if err := n.Start(ctx); err != nil {
			return err
		}
		fmt.Printf("full http://%s%s\n", n.Addr(), path)
		go func() { errc <- <-n.Failed() }()
	}

	if slices.Contains(serve, "bare") {
		values := map[string][]byte{key: value}
		bare := chi.NewRouter()
		bare.Get("/groups/{group}/keys/{key}", func(w http.ResponseWriter, r *http.Request) {
			v, ok := values[chi.URLParam(r, "key")]
			if !ok {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("Content-Length", strconv.Itoa(len(v)))
			_, _ = w.Write(v)
		})
		// An API with no groups, only for the http.Server it configures.
		api, err := httpapi.New(cfg.API, nil, nil, log)
		if err != nil {
			return err
		}
		srv := api.NewServer()
		srv.Handler = bare
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		fmt.Printf("bare http://%s%s\n", ln.Addr(), path)
		go func() { errc <- srv.Serve(ln) }()
		defer func() {
			shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(shutdown)
		}()
	}

	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		return err
	}
}
