package wire

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// Version is the highest version of the frame set this package speaks, sent in the upgrade
// (header Groupcached-Wire). A server answers with the lower of the two versions; the
// reserved message types (peek, push, set) arrive with version 2, which also marks a stale
// value's results (flagStale): a server sends that flag only on a connection speaking 2.
const Version = 2

// DefaultPath is the request-target of the upgrade, on the node's own HTTP port.
const DefaultPath = "/_peer/v2/conn"

// UpgradeToken is the protocol named in the Upgrade header.
const UpgradeToken = "groupcached-peer/2"

// ClientConfig tunes the Client of one peer. Addr is required; with Secret, so are Self and
// Peer. Every zero field takes DefaultClientConfig's value.
type ClientConfig struct {
	// Addr is the peer's HTTP host:port.
	Addr string

	// Path is the upgrade's request-target. Zero: DefaultPath.
	Path string

	// Self is this node's name, sent in the upgrade (and signed, with Secret).
	Self string

	// Peer is the name of the node expected at Addr. When set, a server that answers with
	// another name is refused (a restarted address now serving another node). Required with
	// Secret, which binds both names into the handshake.
	Peer string

	// Secret is the cluster secret. When set, the upgrade is signed, the server must prove it
	// holds the secret too, and every frame carries a 16-byte HMAC tag. Zero: no MACs
	// (loopback, insecure mode).
	Secret []byte

	// TLS, when set, wraps every connection in TLS (the node serves its HTTP port over TLS).
	// ALPN is forced to http/1.1 so that the upgrade can be hijacked. Zero: plain TCP.
	TLS *tls.Config

	// MaxConns bounds the TCP connections to the peer: 500 concurrent requests share them.
	// More connections spread the work over more reader goroutines and keep a big value
	// from delaying small ones behind it; fewer coalesce more requests per write (measured
	// with 32 callers: 1 connection 12–16 frames per write, 2 connections 7–9, 4 connections
	// 4). Default 2.
	MaxConns int

	// SpreadAt: requests go to the oldest connection until it has SpreadAt in flight; then
	// another one is dialled (up to MaxConns) and the least loaded takes the overflow.
	// Default 32.
	SpreadAt int

	// MaxStreams bounds the requests in flight on one connection (the server's own bound,
	// announced in the upgrade, applies if lower). When every connection is full, blocking
	// calls wait for a slot within their deadline. Default 256.
	MaxStreams int

	// MaxValueBytes is the largest value accepted: a reply declaring more is a protocol
	// error that closes the connection before anything is allocated for it. Set it to the
	// groups' value limit. Default 16 MiB.
	MaxValueBytes int

	// MaxBatchKeys bounds the keys of one FetchBatch (and so the request's size); larger
	// batches are refused before sending. Default 256.
	MaxBatchKeys int

	// MaxKeyBytes is the longest key sent: a longer one is answered CodeInvalidKey without
	// being sent. Set it to the peer's ServerConfig.MaxKeyBytes, which closes the connection
	// on a request longer than its bound. At most 1 MiB. Default 1 MiB.
	MaxKeyBytes int

	// DialTimeout bounds connecting: TCP, TLS and the upgrade. Default 2 s.
	DialTimeout time.Duration

	// RequestTimeout bounds every request whose context has no earlier deadline; at the
	// deadline the call fails with ErrUnavailable (ErrTimeout). Default 30 s.
	RequestTimeout time.Duration

	// PingAfter: when requests are in flight and nothing has been read from a connection for
	// this long, it is pinged. PingTimeout: if nothing arrives within this long of a ping, the
	// connection is closed and its calls fail with ErrUnavailable (ErrNoPong). A stopped peer
	// (SIGSTOP: the kernel still accepts the bytes) is so detected within their sum, however
	// long a legitimate load takes. Defaults 500 ms and 1 s.
	PingAfter, PingTimeout time.Duration

	// SweepInterval is how often deadlines are checked while requests are in flight (one
	// timer per Client, none per request): a call fails at most this late. Default 20 ms.
	SweepInterval time.Duration

	// IdleTimeout closes a connection with nothing in flight for this long. Keep it below
	// the server's IdleTimeout so that the client, not the server, ends idle connections.
	// Default 90 s.
	IdleTimeout time.Duration

	// RedialMin and RedialMax bound the backoff after a failed dial: calls made while it
	// lasts fail at once with ErrUnavailable (the caller loads locally) instead of waiting
	// for a dead peer. Defaults 50 ms and 5 s.
	RedialMin, RedialMax time.Duration

	// ReadBufferBytes is each connection's read buffer. Default 32 KiB.
	ReadBufferBytes int
}

// DefaultClientConfig returns production values for a LAN.
func DefaultClientConfig() ClientConfig {
	return ClientConfig{
		Path:            DefaultPath,
		MaxConns:        2,
		SpreadAt:        32,
		MaxStreams:      256,
		MaxValueBytes:   16 << 20,
		MaxBatchKeys:    256,
		MaxKeyBytes:     1 << 20,
		DialTimeout:     2 * time.Second,
		RequestTimeout:  30 * time.Second,
		PingAfter:       500 * time.Millisecond,
		PingTimeout:     time.Second,
		SweepInterval:   20 * time.Millisecond,
		IdleTimeout:     90 * time.Second,
		RedialMin:       50 * time.Millisecond,
		RedialMax:       5 * time.Second,
		ReadBufferBytes: 32 << 10,
	}
}

func (c ClientConfig) withDefaults() ClientConfig {
	d := DefaultClientConfig()
	orDefault(&c.Path, d.Path)
	orDefault(&c.MaxConns, d.MaxConns)
	orDefault(&c.SpreadAt, d.SpreadAt)
	orDefault(&c.MaxStreams, d.MaxStreams)
	orDefault(&c.MaxValueBytes, d.MaxValueBytes)
	orDefault(&c.MaxBatchKeys, d.MaxBatchKeys)
	orDefault(&c.MaxKeyBytes, d.MaxKeyBytes)
	orDefault(&c.DialTimeout, d.DialTimeout)
	orDefault(&c.RequestTimeout, d.RequestTimeout)
	orDefault(&c.PingAfter, d.PingAfter)
	orDefault(&c.PingTimeout, d.PingTimeout)
	orDefault(&c.SweepInterval, d.SweepInterval)
	orDefault(&c.IdleTimeout, d.IdleTimeout)
	orDefault(&c.RedialMin, d.RedialMin)
	orDefault(&c.RedialMax, d.RedialMax)
	orDefault(&c.ReadBufferBytes, d.ReadBufferBytes)
	return c
}

// Validate reports the first field out of range (after defaults are applied).
func (c ClientConfig) Validate() error {
	c = c.withDefaults()
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("wire: Addr %q: %w", c.Addr, err)
	}
	if err := checkName("Self", c.Self, c.Secret != nil); err != nil {
		return err
	}
	if err := checkName("Peer", c.Peer, c.Secret != nil); err != nil {
		return err
	}
	switch {
	case c.Path[0] != '/':
		return fmt.Errorf("wire: Path %q must start with /", c.Path)
	case c.MaxConns < 1 || c.SpreadAt < 1 || c.MaxStreams < 1 || c.MaxBatchKeys < 1:
		return errors.New("wire: MaxConns, SpreadAt, MaxStreams and MaxBatchKeys must be positive")
	case c.MaxStreams > 1<<16:
		return errors.New("wire: MaxStreams must be at most 65536")
	case c.MaxBatchKeys > 1<<16-1:
		return errors.New("wire: MaxBatchKeys must be at most 65535")
	case c.MaxKeyBytes < 1 || c.MaxKeyBytes > 1<<20:
		return errors.New("wire: MaxKeyBytes must be between 1 and 1 MiB")
	case c.MaxValueBytes < 1 || c.MaxValueBytes > 1<<31:
		return errors.New("wire: MaxValueBytes must be between 1 and 2 GiB")
	case c.DialTimeout < 0 || c.RequestTimeout < 0 || c.PingAfter < 0 || c.PingTimeout < 0 ||
		c.SweepInterval < 0 || c.IdleTimeout < 0 || c.RedialMin < 0 || c.RedialMax < c.RedialMin:
		return errors.New("wire: durations must be positive, RedialMax at least RedialMin")
	case c.ReadBufferBytes < 4<<10:
		return errors.New("wire: ReadBufferBytes must be at least 4 KiB")
	}
	return nil
}

// ServerConfig tunes the Server of one node. With Secret, Name is required. Every zero field
// takes DefaultServerConfig's value.
type ServerConfig struct {
	// Name is this node's name: announced in the upgrade's answer, and the receiver an
	// authenticated upgrade must name.
	Name string

	// Secret is the cluster secret (see ClientConfig.Secret). Zero: upgrades are not
	// authenticated, so anyone who reaches the port is served (loopback, insecure mode).
	Secret []byte

	// IsMember reports whether a node name, connecting from remoteAddr (the request's
	// RemoteAddr, ip:port), is a current member. An authenticated upgrade from anyone else
	// is refused 403. It may be called concurrently and must not block. Zero: every holder
	// of the secret is accepted.
	IsMember func(name, remoteAddr string) bool

	// AuthWindow is how far an upgrade's timestamp may be from this node's clock; nonces are
	// remembered this long, so a captured upgrade cannot be replayed. Default 30 s.
	AuthWindow time.Duration

	// MaxNonces bounds the replay cache: when it is full of nonces still inside the window,
	// upgrades are refused 503. Upgrades are rare (connections are pooled). Default 65536.
	MaxNonces int

	// MaxKeyBytes is the longest key served; longer keys are answered CodeInvalidKey.
	// Default 1 KiB, the node's max_key_bytes default.
	MaxKeyBytes int

	// MaxValueBytes is the largest value sent; a larger one is answered CodeLoadFailed
	// rather than broken off by the client's bound. Set it to the clients' limit. Default
	// 16 MiB.
	MaxValueBytes int

	// MaxBatchKeys bounds one batch; a longer one is answered CodeBadRequest. Default 256.
	MaxBatchKeys int

	// MaxStreams bounds the requests served at once on one connection, announced to the
	// client; past it the server stops reading that connection (backpressure). Default 256.
	MaxStreams int

	// MaxConns bounds the connections served at once; further upgrades are refused 503.
	// Default 1024.
	MaxConns int

	// IdleTimeout: a connection with nothing read and nothing in flight for this long is sent
	// GoAway and closed. Default 5 min.
	IdleTimeout time.Duration

	// WriteTimeout: a write to a client that does not progress for this long closes the
	// connection (the client stopped reading). Default 10 s.
	WriteTimeout time.Duration

	// WriteQueueBytes bounds the replies queued on one connection; senders wait beyond it.
	// Default 4 MiB.
	WriteQueueBytes int

	// ReadBufferBytes is each connection's read buffer. Default 32 KiB.
	ReadBufferBytes int

	// Logger receives refused upgrades and broken connections (Debug) and handler panics
	// (Error). Zero: slog.Default().
	Logger *slog.Logger
}

// DefaultServerConfig returns production values.
func DefaultServerConfig() ServerConfig {
	return ServerConfig{
		AuthWindow:      30 * time.Second,
		MaxNonces:       1 << 16,
		MaxKeyBytes:     1 << 10,
		MaxValueBytes:   16 << 20,
		MaxBatchKeys:    256,
		MaxStreams:      256,
		MaxConns:        1024,
		IdleTimeout:     5 * time.Minute,
		WriteTimeout:    10 * time.Second,
		WriteQueueBytes: 4 << 20,
		ReadBufferBytes: 32 << 10,
	}
}

func (c ServerConfig) withDefaults() ServerConfig {
	d := DefaultServerConfig()
	orDefault(&c.AuthWindow, d.AuthWindow)
	orDefault(&c.MaxNonces, d.MaxNonces)
	orDefault(&c.MaxKeyBytes, d.MaxKeyBytes)
	orDefault(&c.MaxValueBytes, d.MaxValueBytes)
	orDefault(&c.MaxBatchKeys, d.MaxBatchKeys)
	orDefault(&c.MaxStreams, d.MaxStreams)
	orDefault(&c.MaxConns, d.MaxConns)
	orDefault(&c.IdleTimeout, d.IdleTimeout)
	orDefault(&c.WriteTimeout, d.WriteTimeout)
	orDefault(&c.WriteQueueBytes, d.WriteQueueBytes)
	orDefault(&c.ReadBufferBytes, d.ReadBufferBytes)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports the first field out of range (after defaults are applied).
func (c ServerConfig) Validate() error {
	c = c.withDefaults()
	if err := checkName("Name", c.Name, c.Secret != nil); err != nil {
		return err
	}
	switch {
	case c.MaxKeyBytes < 1 || c.MaxKeyBytes > 1<<20:
		return errors.New("wire: MaxKeyBytes must be between 1 and 1 MiB")
	case c.MaxValueBytes < 1 || c.MaxValueBytes > 1<<31:
		return errors.New("wire: MaxValueBytes must be between 1 and 2 GiB")
	case c.MaxBatchKeys < 1 || c.MaxBatchKeys > 1<<16-1:
		return errors.New("wire: MaxBatchKeys must be between 1 and 65535")
	case c.MaxStreams < 1 || c.MaxStreams > 1<<16:
		return errors.New("wire: MaxStreams must be between 1 and 65536")
	case c.MaxConns < 1 || c.MaxNonces < 1:
		return errors.New("wire: MaxConns and MaxNonces must be positive")
	case c.AuthWindow < 0 || c.IdleTimeout < 0 || c.WriteTimeout < 0:
		return errors.New("wire: durations must be positive")
	case c.WriteQueueBytes < 1 || c.ReadBufferBytes < 4<<10:
		return errors.New("wire: WriteQueueBytes must be positive, ReadBufferBytes at least 4 KiB")
	}
	return nil
}

// maxRequest is the largest request payload the server reads: a batch of MaxBatchKeys keys
// of MaxKeyBytes (bigger keys are answered, not read, only if they fit).
func (c ServerConfig) maxRequest() int {
	return 1 + MaxGroupBytes + 2 + c.MaxBatchKeys*(4+c.MaxKeyBytes)
}

// maxSet is the largest set message a server reads: a key, a TTL, metadata and a value.
func (c ServerConfig) maxSet() int64 {
	return int64(1+MaxGroupBytes+4+c.MaxKeyBytes+ttlLen+maxMetaLen) + int64(c.MaxValueBytes)
}

// checkName accepts a node name that can travel in an HTTP header: 1–255 bytes of printable
// ASCII without spaces.
func checkName(field, name string, required bool) error {
	if name == "" {
		if required {
			return fmt.Errorf("wire: %s is required with a Secret", field)
		}
		return nil
	}
	if len(name) > 255 {
		return fmt.Errorf("wire: %s is longer than 255 bytes", field)
	}
	for i := 0; i < len(name); i++ {
		if name[i] <= ' ' || name[i] >= 0x7f {
			return fmt.Errorf("wire: %s %q: only printable ASCII without spaces", field, name)
		}
	}
	return nil
}

func orDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}
