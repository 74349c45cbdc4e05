package wire

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// The benchmarks time one fetch of a 1 KiB value over loopback, client and server in this
// process, for this wire (with and without frame MACs) and for a net/http GET serving the same
// bytes the way the v1 peer wire does (query-escaped key, Content-Length body read in one
// allocation), over HTTP/1.1 and over h2c: the yardsticks. "serial" is one caller; "parallel32" is 32 callers
// (b.SetParallelism, scaled to GOMAXPROCS) sharing one client.

const benchValueBytes = 1024

func benchValue() []byte {
	v := make([]byte, benchValueBytes)
	for i := range v {
		v[i] = 'v'
	}
	return v
}

// fetcher is one way to fetch a key.
type fetcher func(ctx context.Context, key string) ([]byte, error)

func wireFetcher(b *testing.B, mac bool) fetcher {
	value := benchValue()
	h := &fakeHandler{fetch: func(context.Context, string, string) (Value, error) {
		return Value{Bytes: value, TTL: time.Minute}, nil
	}}
	scfg := testServerConfig()
	ccfg := testClientConfig("")
	if mac {
		scfg.Secret, ccfg.Secret = testSecret, testSecret
	}
	ts := startServer(b, scfg, h, serverOptions{})
	ccfg.Addr = ts.addr
	ccfg.SweepInterval = DefaultClientConfig().SweepInterval
	c := newClient(b, ccfg)
	b.Cleanup(func() { reportFramesPerWrite(b, c) })
	return func(ctx context.Context, key string) ([]byte, error) {
		v, err := c.Fetch(ctx, "g", key)
		return v.Bytes, err
	}
}

// reportFramesPerWrite reports how many requests went out per write syscall: the writer's
// coalescing.
func reportFramesPerWrite(b *testing.B, c *Client) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var writes uint64
	for _, cc := range c.conns {
		writes += cc.w.flushes.Load()
	}
	if writes > 0 {
		b.ReportMetric(float64(b.N)/float64(writes), "frames/write")
	}
}

// httpFetcher is the v1 peer wire's GET; with h2c, over unencrypted HTTP/2 (one multiplexed
// connection, as Thanos runs its groupcache peers).
func httpFetcher(b *testing.B, h2c bool) fetcher {
	value := benchValue()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.URL.Query().Get("key")
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(value)))
		w.Header().Set("Groupcached-Ttl", "1m0s")
		w.Write(value)
	}))
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	if h2c {
		srv.Config.Protocols = new(http.Protocols)
		srv.Config.Protocols.SetUnencryptedHTTP2(true)
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
	}
	srv.Start()
	b.Cleanup(srv.Close)
	b.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	base := srv.URL + "/_peer/v1/fetch?group=g&key="
	return func(ctx context.Context, key string) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+url.QueryEscape(key), nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Groupcached-Peer", "asker")
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if h2c && resp.ProtoMajor != 2 {
			return nil, fmt.Errorf("answered over %s", resp.Proto)
		}
		buf := make([]byte, resp.ContentLength)
		_, err = io.ReadFull(resp.Body, buf)
		return buf, err
	}
}

func BenchmarkFetch(b *testing.B) {
	for _, tt := range []struct {
		name string
		new  func(*testing.B) fetcher
	}{
		{"wire", func(b *testing.B) fetcher { return wireFetcher(b, false) }},
		{"wire-mac", func(b *testing.B) fetcher { return wireFetcher(b, true) }},
		{"http", func(b *testing.B) fetcher { return httpFetcher(b, false) }},
		{"h2c", func(b *testing.B) fetcher { return httpFetcher(b, true) }},
	} {
		b.Run(tt.name+"/serial", func(b *testing.B) {
			fetch := tt.new(b)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if v, err := fetch(ctx, "key"); err != nil || len(v) != benchValueBytes {
					b.Fatalf("fetch: %d bytes, %v", len(v), err)
				}
			}
		})
		b.Run(tt.name+"/parallel32", func(b *testing.B) {
			fetch := tt.new(b)
			ctx := context.Background()
			b.SetParallelism(max(1, 32/runtime.GOMAXPROCS(0)))
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if v, err := fetch(ctx, "key"); err != nil || len(v) != benchValueBytes {
						b.Errorf("fetch: %d bytes, %v", len(v), err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkFetch50 fetches 50 keys per op: in one batch, as 50 fetches one after the other,
// and as 50 asynchronous fetches sent together (which the writer coalesces).
func BenchmarkFetch50(b *testing.B) {
	keys := make([]string, 50)
	for i := range keys {
		keys[i] = fmt.Sprint("key-", i)
	}
	value := benchValue()
	h := &fakeHandler{fetch: func(context.Context, string, string) (Value, error) {
		return Value{Bytes: value, TTL: time.Minute}, nil
	}}
	ts := startServer(b, testServerConfig(), h, serverOptions{})
	cfg := testClientConfig(ts.addr)
	cfg.SweepInterval = DefaultClientConfig().SweepInterval
	c := newClient(b, cfg)
	ctx := context.Background()
	b.Run("batch", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			res, err := c.FetchBatch(ctx, "g", keys)
			if err != nil || len(res[49].Bytes) != benchValueBytes {
				b.Fatalf("batch: %v", err)
			}
		}
	})
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, k := range keys {
				if _, err := c.Fetch(ctx, "g", k); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("async", func(b *testing.B) {
		b.ReportAllocs()
		var wg sync.WaitGroup
		done := func(v Value, err error) {
			if err != nil || len(v.Bytes) != benchValueBytes {
				b.Errorf("fetch: %v", err)
			}
			wg.Done()
		}
		for b.Loop() {
			deadline := time.Now().Add(5 * time.Second)
			wg.Add(len(keys))
			for _, k := range keys {
				c.FetchFunc("g", k, deadline, done)
			}
			wg.Wait()
		}
	})
}

// BenchmarkFrameTag times the tag of one frame (header and payload) with the HMAC-SHA256 this
// wire uses, beside AES-128-GMAC (GCM sealing no plaintext, the frame as additional data,
// the sequence number as nonce), the faster MAC it could use instead.
func BenchmarkFrameTag(b *testing.B) {
	for _, size := range []int{64, 1 << 10, 64 << 10} {
		frame := make([]byte, headerLen+size)
		b.Run(fmt.Sprintf("hmac-sha256/%dB", size), func(b *testing.B) {
			m := newFrameMAC(make([]byte, 32))
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				m.tag(frame[:headerLen], frame[headerLen:], nil)
			}
		})
		b.Run(fmt.Sprintf("aes-gmac/%dB", size), func(b *testing.B) {
			block, _ := aes.NewCipher(make([]byte, 16))
			gcm, _ := cipher.NewGCM(block)
			var nonce [12]byte
			var sum [16]byte
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			var seq uint64
			for b.Loop() {
				binary.BigEndian.PutUint64(nonce[4:], seq)
				seq++
				gcm.Seal(sum[:0], nonce[:], nil, frame)
			}
		})
	}
}
