package peers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/groupcached/groupcached/group"
)

// The peer wire. Requests:
//
//	GET  {PathPrefix}/v1/fetch?group=G&key=K   the value of K, served by GetLocal
//	POST {PathPrefix}/v1/remove?group=G&key=K  RemoveLocal(K)
//	POST {PathPrefix}/v1/purge?group=G         PurgeLocal()
//
// each carrying headerPeer with the asking node's name. A fetch answers 200 with the raw
// value as the body and headerTTL; every failure answers a status with headerError naming
// the failure (the codes below) and a one-line message as the body. Group and key travel
// query-escaped, which round-trips every byte and is immune to path cleaning.
const (
	pathFetch  = PathPrefix + "/v1/fetch"
	pathRemove = PathPrefix + "/v1/remove"
	pathPurge  = PathPrefix + "/v1/purge"

	headerPeer  = "Groupcached-Peer"  // the asking node's name: marks a peer request
	headerTTL   = "Groupcached-Ttl"   // remaining lifetime, time.Duration syntax; absent: none
	headerError = "Groupcached-Error" // one of the codes below
)

// Error codes on the peer wire, each with one status.
const (
	codeNotFound     = "not_found"     // 404: the origin has no such key (group.ErrNotFound)
	codeUnknownGroup = "unknown_group" // 404: the peer has no group of that name
	codeBadRequest   = "bad_request"   // 400, 404, 405: not a request of this wire
	codeInvalidKey   = "invalid_key"   // 400: group.ErrInvalidKey
	codeLoaderPanic  = "loader_panic"  // 500: group.ErrLoaderPanic
	codeLoadFailed   = "load_failed"   // 502: the owner's loader returned an error
	codeLoadTimeout  = "load_timeout"  // 504: group.ErrLoadTimeout
	codeShuttingDown = "shutting_down" // 503: the peer is leaving; ask someone else
)

// ErrUnknownGroup is returned (wrapped) when a peer has no group of the requested name: the
// nodes of the cluster were configured with different groups.
var ErrUnknownGroup = errors.New("group not registered on the peer")

// RemoteError is a failure that a peer reported after it received the request: its load
// failed, panicked or timed out. It is not ErrPeerUnavailable, so the asking Group returns it
// instead of loading the key again. errors.Is sees through it to group.ErrLoaderPanic,
// group.ErrLoadTimeout, group.ErrNotFound or ErrUnknownGroup when the code says so.
type RemoteError struct {
	Peer    string // the peer's node name
	Code    string // the wire code, such as "load_failed"
	Message string // the peer's error message
	kind    error
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("peer %s: %s", e.Peer, e.Message)
}

// Unwrap returns the sentinel the code stands for, or nil for a plain load failure.
func (e *RemoteError) Unwrap() error { return e.kind }

// codeError returns the sentinel a wire code stands for, or nil.
func codeError(code string) error {
	switch code {
	case codeNotFound:
		return group.ErrNotFound
	case codeUnknownGroup:
		return ErrUnknownGroup
	case codeInvalidKey:
		return group.ErrInvalidKey
	case codeLoaderPanic:
		return group.ErrLoaderPanic
	case codeLoadTimeout:
		return group.ErrLoadTimeout
	}
	return nil
}

// errorCode maps an error of GetLocal to its wire code and status: the one place where the
// peer wire turns errors into statuses.
func errorCode(err error) (code string, status int) {
	switch {
	case errors.Is(err, group.ErrNotFound):
		return codeNotFound, http.StatusNotFound
	case errors.Is(err, ErrUnknownGroup):
		return codeUnknownGroup, http.StatusNotFound
	case errors.Is(err, group.ErrInvalidKey):
		return codeInvalidKey, http.StatusBadRequest
	case errors.Is(err, group.ErrLoaderPanic):
		return codeLoaderPanic, http.StatusInternalServerError
	case errors.Is(err, group.ErrLoadTimeout):
		return codeLoadTimeout, http.StatusGatewayTimeout
	default:
		return codeLoadFailed, http.StatusBadGateway
	}
}

// handler serves the peer wire for one Cluster.
type handler struct{ c *Cluster }

func (h handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(headerPeer) == "" {
		writeError(w, codeBadRequest, http.StatusBadRequest, "missing "+headerPeer+" header: peer endpoints serve cluster members only")
		return
	}
	if h.c.life.Err() != nil {
		writeError(w, codeShuttingDown, http.StatusServiceUnavailable, "node "+h.c.cfg.NodeName+" is shutting down")
		return
	}
	var method string
	switch r.URL.Path {
	case pathFetch:
		method = http.MethodGet
	case pathRemove, pathPurge:
		method = http.MethodPost
	default:
		writeError(w, codeBadRequest, http.StatusNotFound, "no peer endpoint "+r.URL.Path)
		return
	}
	if r.Method != method {
		w.Header().Set("Allow", method)
		writeError(w, codeBadRequest, http.StatusMethodNotAllowed, r.Method+" not allowed on "+r.URL.Path)
		return
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		writeError(w, codeBadRequest, http.StatusBadRequest, "bad query: "+err.Error())
		return
	}
	name := q.Get("group")
	g := h.c.group(name)
	if g == nil {
		writeError(w, codeUnknownGroup, http.StatusNotFound, fmt.Sprintf("%v: %q on node %s", ErrUnknownGroup, name, h.c.cfg.NodeName))
		return
	}
	switch r.URL.Path {
	case pathFetch:
		h.fetch(w, r, g, q.Get("key"))
	case pathRemove:
		g.RemoveLocal(q.Get("key"))
		w.WriteHeader(http.StatusNoContent)
	case pathPurge:
		g.PurgeLocal()
		w.WriteHeader(http.StatusNoContent)
	}
}

// fetch answers from GetLocal, never from another node. The request ends when the asker goes
// away or this node shuts down; the fill itself goes on for its other waiters.
func (h handler) fetch(w http.ResponseWriter, r *http.Request, g *group.Group, key string) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(h.c.life, cancel)
	defer stop()

	res, err := g.GetLocal(ctx, key)
	if err != nil {
		if h.c.life.Err() != nil {
			writeError(w, codeShuttingDown, http.StatusServiceUnavailable, "node "+h.c.cfg.NodeName+" is shutting down")
			return
		}
		if r.Context().Err() != nil {
			return // the asker is gone: nobody reads an answer
		}
		code, status := errorCode(err)
		writeError(w, code, status, err.Error())
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "application/octet-stream")
	hdr.Set("Content-Length", strconv.Itoa(len(res.Bytes)))
	if res.TTL > 0 {
		hdr.Set(headerTTL, res.TTL.String())
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(res.Bytes)
}

func writeError(w http.ResponseWriter, code string, status int, msg string) {
	hdr := w.Header()
	hdr.Set("Content-Type", "text/plain; charset=utf-8")
	hdr.Set(headerError, code)
	w.WriteHeader(status)
	_, _ = io.WriteString(w, msg)
}

// httpPeer is one member seen through the peer wire. It implements group.Peer.
type httpPeer struct {
	c    *Cluster
	name string
	addr string // host:port
	base string // "http://" + addr
}

func newHTTPPeer(c *Cluster, name, addr string) *httpPeer {
	return &httpPeer{c: c, name: name, addr: addr, base: "http://" + addr}
}

// Fetch asks the peer for key: see group.Peer for how errors keep their meaning.
func (p *httpPeer) Fetch(ctx context.Context, groupName, key string) (group.Value, error) {
	v, err := p.fetch(ctx, groupName, key)
	if err != nil && !errors.Is(err, group.ErrNotFound) {
		p.c.fetchErrors.Add(1)
		if errors.Is(err, group.ErrPeerUnavailable) {
			p.c.unreachable.Add(1)
		}
	}
	return v, err
}

func (p *httpPeer) fetch(ctx context.Context, groupName, key string) (group.Value, error) {
	callCtx, cancel := context.WithTimeout(ctx, p.c.cfg.FetchTimeout)
	defer cancel()
	u := p.base + pathFetch + "?group=" + url.QueryEscape(groupName) + "&key=" + url.QueryEscape(key)
	resp, err := p.do(callCtx, http.MethodGet, u)
	if err != nil {
		return group.Value{}, p.transportError(ctx, "fetching "+strconv.Quote(key), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return group.Value{}, p.statusError(ctx, "fetching "+strconv.Quote(key), resp)
	}
	var ttl time.Duration
	if s := resp.Header.Get(headerTTL); s != "" {
		if ttl, err = time.ParseDuration(s); err != nil || ttl < 0 {
			return group.Value{}, fmt.Errorf("fetching %q from peer %s: bad %s header %q", key, p.name, headerTTL, s)
		}
	}
	body, err := readBody(resp)
	if err != nil {
		// The owner went away halfway through its answer: as good as no answer.
		return group.Value{}, p.transportError(ctx, "reading "+strconv.Quote(key), err)
	}
	return group.Value{Bytes: body, TTL: ttl}, nil
}

// readBody reads the whole body in one allocation when its length is known.
func readBody(resp *http.Response) ([]byte, error) {
	if n := resp.ContentLength; n >= 0 {
		buf := make([]byte, n)
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	return io.ReadAll(resp.Body)
}

func (p *httpPeer) do(ctx context.Context, method, u string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set(headerPeer, p.c.cfg.NodeName)
	return p.c.client.Do(req)
}

// transportError classifies a failure before a complete answer arrived. If the caller's own
// context ended, that is the caller's deadline, not the peer's fault; anything else (refused,
// reset, FetchTimeout before the answer) means the peer is unavailable.
func (p *httpPeer) transportError(ctx context.Context, what string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%s from peer %s: %w", what, p.name, ctxErr)
	}
	return fmt.Errorf("%s from peer %s at %s: %w: %w", what, p.name, p.addr, group.ErrPeerUnavailable, err)
}

// statusError turns an answer that is not a success into an error. Answers that carry our
// error code are the peer's verdict; a 503 shutting_down, or any answer without a code (a
// proxy, a node whose peer endpoints are not mounted), means the peer is unavailable.
func (p *httpPeer) statusError(ctx context.Context, what string, resp *http.Response) error {
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	code := resp.Header.Get(headerError)
	if code == "" || code == codeShuttingDown {
		return p.transportError(ctx, what, fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(msg))))
	}
	return &RemoteError{Peer: p.name, Code: code, Message: string(msg), kind: codeError(code)}
}

// invalidate sends one remove or purge to the peer and waits for its confirmation.
func (p *httpPeer) invalidate(ctx context.Context, path, groupName, key string) error {
	ctx, cancel := context.WithTimeout(ctx, p.c.cfg.FetchTimeout)
	defer cancel()
	u := p.base + path + "?group=" + url.QueryEscape(groupName)
	if path == pathRemove {
		u += "&key=" + url.QueryEscape(key)
	}
	resp, err := p.do(ctx, http.MethodPost, u)
	if err != nil {
		return fmt.Errorf("peer %s at %s: %w", p.name, p.addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return p.statusError(ctx, "invalidating", resp)
	}
	return nil
}

// invalidateAll sends a remove (or a purge, when path is pathPurge) to every other member in
// parallel and reports how many confirmed.
func (c *Cluster) invalidateAll(ctx context.Context, path, groupName, key string) (int, error) {
	c.invalidations.Add(1)
	v := c.view.Load()
	var (
		mu        sync.Mutex
		confirmed int
		errs      []error
		wg        sync.WaitGroup
	)
	for _, p := range v.peers {
		if p == nil {
			continue // this node
		}
		wg.Go(func() {
			err := p.invalidate(ctx, path, groupName, key)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			confirmed++
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return confirmed, fmt.Errorf("%d of %d peers did not confirm: %w", len(errs), len(errs)+confirmed, err)
	}
	return confirmed, nil
}

// newTransport returns the pooled HTTP transport of one Cluster: never DefaultTransport, so a
// node's connections and limits are its own.
func newTransport(cfg Config) *http.Transport {
	dialer := &net.Dialer{Timeout: min(cfg.FetchTimeout, 5*time.Second), KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   cfg.MaxIdleConnsPerPeer,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: cfg.FetchTimeout,
		DisableCompression:    true,
	}
}
