package httpapi

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestSlowAndEndlessBodies plays the attacker on the two routes that read a body, PUT and
// mget, over a raw socket: a body that trickles in slower than the server's read timeout is
// answered 408 "timeout" (not left hanging, not blamed on its syntax), and an endless chunked
// body 413 "too_large" once it passes the route's limit, without reading the rest.
func TestSlowAndEndlessBodies(t *testing.T) {
	cfg := aloneConfig()
	cfg.API.ReadTimeout = 500 * time.Millisecond
	n := startNodeValue(t, cfg, &origin{})

	for _, tc := range []struct {
		name, head string
		endless    bool
		status     int
		code       string
	}{
		{"slow PUT", "PUT /groups/g/keys/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n", false, http.StatusRequestTimeout, CodeTimeout},
		{"slow mget", "POST /groups/g/mget HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n", false, http.StatusRequestTimeout, CodeTimeout},
		{"endless PUT", "PUT /groups/g/keys/endless HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", true, http.StatusRequestEntityTooLarge, CodeTooLarge},
		{"endless mget", "POST /groups/g/mget HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n", true, http.StatusRequestEntityTooLarge, CodeTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.DialTimeout("tcp", n.Addr(), time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Write([]byte(tc.head)); err != nil {
				t.Fatal(err)
			}
			// The attacker writes in the background until the server answers or closes:
			// chunks of 64 KiB as fast as it can (endless), or a byte every 100 ms (slow).
			done := make(chan struct{})
			defer close(done)
			go func() {
				chunk := fmt.Sprintf("%x\r\n%s\r\n", 64<<10, strings.Repeat("x", 64<<10))
				for i := 0; i < 100_000; i++ { // bounded: 6.4 GB endless, 10,000 s slow
					select {
					case <-done:
						return
					default:
					}
					var err error
					if tc.endless {
						_, err = conn.Write([]byte(chunk))
					} else {
						_, err = conn.Write([]byte("{"))
						time.Sleep(100 * time.Millisecond)
					}
					if err != nil {
						return
					}
				}
			}()
			_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			defer resp.Body.Close()
			var e struct {
				Code string `json:"code"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&e)
			if resp.StatusCode != tc.status || e.Code != tc.code {
				t.Errorf("%s: %d %q, want %d %q", tc.name, resp.StatusCode, e.Code, tc.status, tc.code)
			}
		})
	}
}
