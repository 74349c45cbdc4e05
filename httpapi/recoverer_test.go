package httpapi

import (
	"io"
	"net/http"
	"testing"
)

func TestRecovererAnswers500AndKeepsServing(t *testing.T) {
	a, err := New(LocalConfig(), nil, nil, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", a.recoverer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bug" {
			panic("handler bug")
		}
		_, _ = io.WriteString(w, "fine")
	})))
	srv := startServer(t, mux)
	resp, body := request(t, srv.Client(), srv.URL, http.MethodGet, "/bug")
	wantError(t, resp, body, http.StatusInternalServerError, CodeInternal)
	resp, body = request(t, srv.Client(), srv.URL, http.MethodGet, "/ok")
	if resp.StatusCode != http.StatusOK || string(body) != "fine" {
		t.Errorf("after a handler panic: %d %q", resp.StatusCode, body)
	}
}
