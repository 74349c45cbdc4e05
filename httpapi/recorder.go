package httpapi

import (
	"bufio"
	"net"
	"net/http"
)

// responseRecorder wraps a ResponseWriter to see the answer's status and size, for the request
// metrics and the access log. It forwards everything; Unwrap lets http.ResponseController
// reach the connection's own writer (its Flush, deadlines), and Hijack is forwarded the same
// way, noting that the connection left HTTP (the peer wire's upgrade). The outermost of the
// two middlewares makes one; the other reuses it (see recorderFor).
type responseRecorder struct {
	http.ResponseWriter
	status   int   // the final status; 0 until the handler writes a header or a byte
	bytes    int64 // body bytes written
	hijacked bool
}

// WriteHeader records the first final status (1xx answers other than 101 are informational:
// the final one follows).
func (r *responseRecorder) WriteHeader(code int) {
	if r.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *responseRecorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// Flush is for handlers that assert http.Flusher rather than use a ResponseController.
func (r *responseRecorder) Flush() {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	_ = http.NewResponseController(r.ResponseWriter).Flush()
}

// Hijack hands the connection over, as the wrapped writer does, and notes it.
func (r *responseRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(r.ResponseWriter).Hijack()
	if err == nil {
		r.hijacked = true
		if r.status == 0 {
			r.status = http.StatusSwitchingProtocols
		}
	}
	return c, rw, err
}

// Unwrap returns the wrapped writer, for http.ResponseController.
func (r *responseRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Status is the status the client received: 200 when the handler wrote nothing, as net/http
// then answers.
func (r *responseRecorder) Status() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}

// reset readies the recorder for a request on w.
func (r *responseRecorder) reset(w http.ResponseWriter) {
	*r = responseRecorder{ResponseWriter: w}
}
