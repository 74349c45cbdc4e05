package loader

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
	"time"

	"github.com/groupcached/groupcached/group"
)

// HTTP loads keys from an origin service: Load(ctx, "a b/c") on the URL template
// "http://origin:8080/items/{key}" is GET http://origin:8080/items/a%20b%2Fc.
//
// The key is path-escaped into a single segment (slashes, '?', '#' and '%' included), so no
// key can change the scheme, host, port or query. It cannot leave the template's path prefix
// either: many origins (and the proxies in front of them) decode %2F before they normalise a
// path, which would turn the key "../private/secret.txt" under "/public/{key}" into
// /private/secret.txt. So a key is refused with group.ErrInvalidKey when any of its segments,
// split at '/' or '\' (which some servers treat as '/'), is "." or "..", also once
// percent-decoded ("%2e%2e", for an origin that decodes twice). "a/b.txt", "..." and "a..b"
// stay valid. Redirects are followed only
// to the same scheme and host. A 200 answer is the value, 204 is an empty value, 404 and 410
// are group.ErrNotFound, anything else (5xx included) is a load failure that is never cached,
// and so are a body above HTTPConfig.MaxBodyBytes (ErrTooLarge) and a timeout
// (group.ErrLoadTimeout).
//
// Requests carry the caller's context, so the group's load timeout reaches the origin, and run
// over the loader's own pooled transport (not http.DefaultTransport; no proxy from the
// environment). HTTP is safe for concurrent use; Close drops its idle connections.
type HTTP struct {
	tmpl     urlTemplate
	headers  http.Header
	maxBytes int64
	timeout  time.Duration
	useTTL   bool

	transport *http.Transport
	client    *http.Client
}

var (
	_ group.Loader = (*HTTP)(nil)
	_ io.Closer    = (*HTTP)(nil)
)

// maxRedirects bounds a redirect chain on the origin's own host.
const maxRedirects = 5

// NewHTTP builds an HTTP loader after checking cfg (HTTPConfig.Validate). It does not contact
// the origin, so a node can start before its origin does.
func NewHTTP(cfg HTTPConfig) (*HTTP, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("http loader: %w", err)
	}
	cfg = cfg.withDefaults()
	tmpl, err := parseTemplate(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("http loader: URL: %w", err)
	}
	headers := http.Header{"User-Agent": {"groupcached"}} // origins can tell the cache's loads apart
	for k, v := range cfg.Headers {
		headers.Set(k, v)
	}
	dialer := &net.Dialer{Timeout: min(cfg.Timeout, 5*time.Second), KeepAlive: 30 * time.Second}
	transport := &http.Transport{
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64, // misses come in bursts; the default of 2 would reconnect for most of them
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   min(cfg.Timeout, 10*time.Second),
		ResponseHeaderTimeout: cfg.Timeout,
		ExpectContinueTimeout: time.Second,
	}
	h := &HTTP{
		tmpl:      tmpl,
		headers:   headers,
		maxBytes:  int64(cfg.MaxBodyBytes),
		timeout:   cfg.Timeout,
		useTTL:    cfg.UseOriginTTL,
		transport: transport,
	}
	h.client = &http.Client{Transport: transport, CheckRedirect: h.checkRedirect}
	return h, nil
}

// checkRedirect follows a redirect only to the origin's own scheme and host.
func (h *HTTP) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("stopped after %d redirects", len(via))
	}
	if req.URL.Scheme != h.tmpl.scheme || !strings.EqualFold(req.URL.Host, h.tmpl.host) {
		return fmt.Errorf("refusing redirect to another origin (%s://%s)", req.URL.Scheme, req.URL.Host)
	}
	return nil
}

// URL returns the address the loader requests for key.
func (h *HTTP) URL(key string) (*url.URL, error) {
	if key == "" {
		return nil, fmt.Errorf("http loader: empty key: %w", group.ErrInvalidKey)
	}
	if hasDotSegment(key) {
		// Escaped or not, many origins resolve a "." or ".." segment against its parent
		// (net/http's ServeMux redirects to it), which would serve another path's value.
		return nil, fmt.Errorf("http loader: key %q holds a relative path segment: %w", key, group.ErrInvalidKey)
	}
	seg := url.PathEscape(key)
	u, err := url.Parse(h.tmpl.prefix + seg + h.tmpl.suffix)
	if err != nil {
		return nil, fmt.Errorf("http loader: key %q: %w", key, group.ErrInvalidKey)
	}
	if u.Scheme != h.tmpl.scheme || !strings.EqualFold(u.Host, h.tmpl.host) {
		// Unreachable with a PathEscape'd key; kept so that a change to the escaping cannot
		// silently send a key to another host.
		return nil, fmt.Errorf("http loader: key %q would leave the origin: %w", key, group.ErrInvalidKey)
	}
	return u, nil
}

// hasDotSegment reports whether key, split at '/' and '\\', has a segment that is "." or "..",
// as it is or percent-decoded once (the decoded key split again).
func hasDotSegment(key string) bool {
	if dotSegment(key) {
		return true
	}
	if strings.Contains(key, "%") {
		if dec, err := url.PathUnescape(key); err == nil && dotSegment(dec) {
			return true
		}
	}
	return false
}

func dotSegment(path string) bool {
	for seg := range strings.FieldsFuncSeq(path, func(r rune) bool { return r == '/' || r == '\\' }) {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// Load GETs the key's URL.
func (h *HTTP) Load(ctx context.Context, key string) (group.Value, error) {
	u, err := h.URL(key)
	if err != nil {
		return group.Value{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return group.Value{}, fmt.Errorf("http loader: %q: %w", key, err)
	}
	for k, v := range h.headers {
		req.Header[k] = v
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return group.Value{}, h.requestError(ctx, key, err)
	}
	defer resp.Body.Close()

	switch resp.StatusCode {
	case http.StatusOK, http.StatusNoContent:
	case http.StatusNotFound, http.StatusGone:
		drain(resp.Body)
		return group.Value{}, fmt.Errorf("http loader: %q: origin answered %s: %w", key, resp.Status, group.ErrNotFound)
	default:
		drain(resp.Body)
		return group.Value{}, fmt.Errorf("http loader: %q: origin answered %s", key, resp.Status)
	}
	if resp.ContentLength > h.maxBytes {
		return group.Value{}, fmt.Errorf("http loader: %q: origin sent %d bytes, limit %d: %w", key, resp.ContentLength, h.maxBytes, ErrTooLarge)
	}
	body, err := readLimited(ctx, resp.Body, resp.ContentLength, h.maxBytes)
	if errors.Is(err, ErrTooLarge) {
		return group.Value{}, fmt.Errorf("http loader: %q: body %w", key, err)
	}
	if errors.Is(err, group.ErrOverloaded) {
		return group.Value{}, fmt.Errorf("http loader: %q: %w", key, err)
	}
	if err != nil {
		return group.Value{}, h.requestError(ctx, key, err)
	}
	v := group.Value{Bytes: body, ContentType: resp.Header.Get("Content-Type")}
	if lm, err := http.ParseTime(resp.Header.Get("Last-Modified")); err == nil {
		v.LastModified = lm
	}
	if h.useTTL {
		v.TTL = originTTL(resp.Header)
	}
	return v, nil
}

// requestError wraps a transport failure, marking timeouts as group.ErrLoadTimeout.
func (h *HTTP) requestError(ctx context.Context, key string, err error) error {
	var nerr net.Error
	if ctx.Err() == context.DeadlineExceeded || (errors.As(err, &nerr) && nerr.Timeout()) {
		return fmt.Errorf("http loader: %q: %w: %w", key, group.ErrLoadTimeout, err)
	}
	return fmt.Errorf("http loader: %q: %w", key, err)
}

// drain reads a little of an unwanted body so that its connection can be reused.
func drain(body io.Reader) { _, _ = io.Copy(io.Discard, io.LimitReader(body, 4<<10)) }

// Close drops the loader's idle connections. Loads after Close still work (they dial again).
func (h *HTTP) Close() error {
	h.transport.CloseIdleConnections()
	return nil
}

// originTTL reads how long a shared cache may serve the response (RFC 9111): s-maxage, else
// max-age, minus Age. A response a shared cache must not reuse (no-store, no-cache, private,
// or a freshness used up) gets the smallest positive TTL, so it is shared by the callers of
// this one load and never served again. No freshness information at all is zero: the group's
// TTL.
func originTTL(h http.Header) time.Duration {
	var maxAge, sMaxAge int64 = -1, -1
	for _, line := range h.Values("Cache-Control") {
		for directive := range strings.SplitSeq(line, ",") {
			name, value, _ := strings.Cut(strings.TrimSpace(directive), "=")
			value = strings.Trim(strings.TrimSpace(value), `"`)
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "no-store", "no-cache", "private":
				return time.Nanosecond
			case "max-age":
				if n, ok := deltaSeconds(value); ok {
					maxAge = n
				}
			case "s-maxage":
				if n, ok := deltaSeconds(value); ok {
					sMaxAge = n
				}
			}
		}
	}
	fresh := sMaxAge
	if fresh < 0 {
		fresh = maxAge
	}
	if fresh < 0 {
		return 0
	}
	if age, err := strconv.ParseInt(strings.TrimSpace(h.Get("Age")), 10, 64); err == nil && age > 0 {
		fresh -= age
	}
	if fresh <= 0 {
		return time.Nanosecond
	}
	return time.Duration(fresh) * time.Second
}

// deltaSeconds parses a Cache-Control delta-seconds value: digits only, and a value too large
// to represent counts as 2^31 (RFC 9111, section 1.2.2).
func deltaSeconds(s string) (int64, bool) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > 1<<31 {
		n = 1 << 31
	}
	return n, true
}
