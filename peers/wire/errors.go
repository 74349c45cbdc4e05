package wire

import (
	"errors"
	"fmt"
	"strconv"
)

// Code is a peer's verdict on one request: one byte on the wire. The names are those of the
// HTTP peer wire (v1), so logs and metrics keep their vocabulary.
type Code uint8

// The verdicts. Zero is not a code (a GoAway with code 0 means "idle, reconnect at will").
const (
	CodeNotFound     Code = 1  // the origin has no such key (group.ErrNotFound)
	CodeUnknownGroup Code = 2  // the peer has no group of that name
	CodeInvalidKey   Code = 3  // empty key, or longer than the peer's MaxKeyBytes
	CodeLoaderPanic  Code = 4  // the owner's loader panicked (group.ErrLoaderPanic)
	CodeLoadFailed   Code = 5  // the owner's loader returned an error
	CodeLoadTimeout  Code = 6  // the owner's fill ran past its LoadTimeout (group.ErrLoadTimeout)
	CodeShuttingDown Code = 7  // the peer is leaving: the client reports ErrUnavailable
	CodeBadRequest   Code = 8  // not a request this peer serves (unknown type, batch too long)
	CodeUnauthorized Code = 9  // an authenticated member asked for something it may not do
	CodeOverloaded   Code = 10 // the peer sheds load: the client reports ErrUnavailable
	// The owner's group refused to start the load (group.ErrOverloaded): a verdict on this
	// request, not unavailability, so the asking node does not load the key itself.
	CodeLoadOverloaded Code = 11
	CodeValueTooLarge  Code = 12 // the owner's value does not fit its cache (group.ErrValueTooLarge)
)

var codeNames = [...]string{
	CodeNotFound:     "not_found",
	CodeUnknownGroup: "unknown_group",
	CodeInvalidKey:   "invalid_key",
	CodeLoaderPanic:  "loader_panic",
	CodeLoadFailed:   "load_failed",
	CodeLoadTimeout:  "load_timeout",
	CodeShuttingDown: "shutting_down",
	CodeBadRequest:   "bad_request",
	CodeUnauthorized: "unauthorized",
	CodeOverloaded:   "overloaded",

	CodeLoadOverloaded: "load_overloaded",
	CodeValueTooLarge:  "value_too_large",
}

// String returns the code's wire name, such as "not_found", or "code_N" for a code this
// version does not know.
func (c Code) String() string {
	if int(c) < len(codeNames) && codeNames[c] != "" {
		return codeNames[c]
	}
	return "code_" + strconv.Itoa(int(c))
}

// unavailable reports whether the code means "ask someone else" rather than a verdict on the
// key: the client turns such answers into ErrUnavailable.
func (c Code) unavailable() bool { return c == CodeShuttingDown || c == CodeOverloaded }

// MaxMessageBytes bounds the message of an Error on the wire: a server cuts longer messages,
// a client refuses a frame that carries one (a protocol error).
const MaxMessageBytes = 512

// Error is a peer's verdict: the request arrived and the peer answered it with a failure.
// A Handler returns one to choose the code; any other error it returns travels as
// CodeLoadFailed with the error's text.
type Error struct {
	Code    Code
	Message string // at most MaxMessageBytes on the wire
}

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code.String()
	}
	return e.Code.String() + ": " + e.Message
}

// CodeOf returns the code of the *Error in err's chain, or 0 when there is none.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

// ErrUnavailable is wrapped by every error that means the peer did not answer: the dial was
// refused, the upgrade or its authentication failed, the connection broke or stopped
// answering, the request ran past its deadline, the peer sent GoAway or answered
// shutting_down or overloaded. After it (and only after it) a caller may do the work itself.
// The peers package maps it to group.ErrPeerUnavailable.
var ErrUnavailable = errors.New("peer unavailable")

// Causes that travel wrapped together with ErrUnavailable, for logs and tests.
var (
	ErrClosed    = errors.New("wire client closed")
	ErrGoAway    = errors.New("peer is going away")
	ErrTimeout   = errors.New("no answer before the deadline")
	ErrNoPong    = errors.New("connection stopped answering (no pong)")
	ErrProtocol  = errors.New("peer wire protocol violation")
	ErrAuth      = errors.New("peer authentication failed")
	ErrOverload  = errors.New("too many requests in flight to the peer")
	ErrTooLarge  = errors.New("frame larger than the limit")
	ErrBadHeader = errors.New("malformed frame")
)

// unavailableError is ErrUnavailable with its cause and the address it concerns.
type unavailableError struct {
	addr  string
	cause error
}

func (e *unavailableError) Error() string {
	return fmt.Sprintf("peer %s: %v: %v", e.addr, ErrUnavailable, e.cause)
}

func (e *unavailableError) Unwrap() []error { return []error{ErrUnavailable, e.cause} }

func unavailable(addr string, cause error) error {
	if errors.Is(cause, ErrUnavailable) {
		return cause
	}
	return &unavailableError{addr: addr, cause: cause}
}

// protocolError wraps ErrProtocol with what was wrong.
func protocolError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}
