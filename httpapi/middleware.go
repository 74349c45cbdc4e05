package httpapi

import (
	"fmt"
	"net/http"
)

// Middleware wraps a handler, chi-style: it may act before and after next, or answer without
// calling it. chi's own middleware (github.com/go-chi/chi/v5/middleware) fits as it is.
type Middleware = func(next http.Handler) http.Handler

// chain returns h wrapped by mws, the first outermost, as chi's Use orders them.
func chain(mws []Middleware, h http.Handler) (http.Handler, error) {
	for i := len(mws) - 1; i >= 0; i-- {
		if mws[i] == nil {
			return nil, fmt.Errorf("nil middleware at Config.Middleware[%d]", i)
		}
		if h = mws[i](h); h == nil {
			return nil, fmt.Errorf("Config.Middleware[%d] returned a nil handler", i)
		}
	}
	return h, nil
}
