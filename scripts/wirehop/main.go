// Command wirehop measures a bare peer hop, for scripts/bench-wirehop.sh: no cache logic,
// only the transport. An owner process serves values from a map over the peer wire
// (peers/wire, on an HTTP upgrade) and over a net/http GET in the v1 peer wire's shape
// (HTTP/1.1 or h2c); a
// front process answers GET /local/{key} from its own map and GET /peer/{key} by asking the
// owner over -via (wire, wire-mac, http or h2c), so that a load generator can compare a local
// answer with one that makes a hop, on the same server stack.
//
// Each process listens on 127.0.0.1:0, prints "listening ADDR", and serves until SIGINT or
// SIGTERM, or until -max-run passes.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/groupcached/groupcached/peers/wire"
)

var secret = []byte("wirehop secret of thirty-two b..")

func main() {
	role := flag.String("role", "", "owner or front")
	owner := flag.String("owner", "", "front: the owner's host:port")
	via := flag.String("via", "wire", "front: wire, wire-mac, http or h2c")
	keys := flag.Int("keys", 300, "keys k1..kN")
	valueBytes := flag.Int("value-bytes", 1024, "size of each value")
	maxConns := flag.Int("max-conns", 0, "front, wire: ClientConfig.MaxConns (0: default)")
	maxRun := flag.Duration("max-run", 10*time.Minute, "stop after this long whatever happens")
	flag.Parse()

	values := make(map[string][]byte, *keys)
	for i := 1; i <= *keys; i++ {
		values["k"+strconv.Itoa(i)] = bytes.Repeat([]byte{'v'}, *valueBytes)
	}
	var h http.Handler
	var err error
	switch *role {
	case "owner":
		h, err = ownerHandler(values)
	case "front":
		h, err = frontHandler(values, *owner, *via, *maxConns)
	default:
		err = errors.New("-role must be owner or front")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "wirehop:", err)
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "wirehop:", err)
		os.Exit(1)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute,
		Protocols: new(http.Protocols)}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true) // the owner answers the h2c front
	fmt.Println("listening", ln.Addr())
	go srv.Serve(ln)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	select {
	case <-ctx.Done():
	case <-time.After(*maxRun):
	}
	srv.Close()
}

// mapHandler is the wire Handler of the owner: it answers from the map.
type mapHandler map[string][]byte

func (m mapHandler) Fetch(_ context.Context, _, key string) (wire.Value, error) {
	v, ok := m[key]
	if !ok {
		return wire.Value{}, &wire.Error{Code: wire.CodeNotFound}
	}
	return wire.Value{Bytes: v, TTL: time.Minute}, nil
}
func (m mapHandler) Remove(context.Context, string, string) error { return nil }
func (m mapHandler) Purge(context.Context, string) error          { return nil }

func ownerHandler(values map[string][]byte) (http.Handler, error) {
	mux := http.NewServeMux()
	for _, s := range []struct {
		path   string
		secret []byte
	}{{wire.DefaultPath, nil}, {wire.DefaultPath + "-mac", secret}} {
		cfg := wire.DefaultServerConfig()
		cfg.Name, cfg.Secret = "owner", s.secret
		cfg.Logger = slog.New(slog.DiscardHandler)
		ws, err := wire.NewServer(cfg, mapHandler(values))
		if err != nil {
			return nil, err
		}
		mux.Handle(s.path, ws)
	}
	mux.HandleFunc("/_peer/v1/fetch", func(w http.ResponseWriter, r *http.Request) {
		v, ok := values[r.URL.Query().Get("key")]
		if !ok {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(v)))
		w.Header().Set("Groupcached-Ttl", "1m0s")
		w.Write(v)
	})
	return mux, nil
}

func frontHandler(values map[string][]byte, owner, via string, maxConns int) (http.Handler, error) {
	var fetch func(ctx context.Context, key string) ([]byte, error)
	switch via {
	case "wire", "wire-mac":
		cfg := wire.DefaultClientConfig()
		cfg.Addr, cfg.Self, cfg.Peer, cfg.MaxConns = owner, "front", "owner", maxConns
		if via == "wire-mac" {
			cfg.Path, cfg.Secret = wire.DefaultPath+"-mac", secret
		}
		c, err := wire.NewClient(cfg)
		if err != nil {
			return nil, err
		}
		fetch = func(ctx context.Context, key string) ([]byte, error) {
			v, err := c.Fetch(ctx, "bench", key)
			return v.Bytes, err
		}
	case "http", "h2c":
		tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
		if via == "h2c" {
			tr.Protocols = new(http.Protocols)
			tr.Protocols.SetUnencryptedHTTP2(true)
		}
		client := &http.Client{Transport: tr}
		base := "http://" + owner + "/_peer/v1/fetch?group=bench&key="
		fetch = func(ctx context.Context, key string) ([]byte, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+url.QueryEscape(key), nil)
			if err != nil {
				return nil, err
			}
			req.Header.Set("Groupcached-Peer", "front")
			resp, err := client.Do(req)
			if err != nil {
				return nil, err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return nil, fmt.Errorf("owner: %s", resp.Status)
			}
			buf := make([]byte, resp.ContentLength)
			_, err = io.ReadFull(resp.Body, buf)
			return buf, err
		}
	default:
		return nil, fmt.Errorf("-via %q: want wire, wire-mac, http or h2c", via)
	}
	answer := func(w http.ResponseWriter, v []byte) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(v)))
		w.Write(v)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/local/"):
			v, ok := values[strings.TrimPrefix(r.URL.Path, "/local/")]
			if !ok {
				http.NotFound(w, r)
				return
			}
			answer(w, v)
		case strings.HasPrefix(r.URL.Path, "/peer/"):
			v, err := fetch(r.Context(), strings.TrimPrefix(r.URL.Path, "/peer/"))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			answer(w, v)
		default:
			http.NotFound(w, r)
		}
	}), nil
}
