package api

import (
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
)

// recoverPanics turns a panic in a request handler into a 500 and an
// ERROR log line with its cause and stack, and marks the node not ready
// for good: a handler that panicked met a bug or damaged data (bbolt
// panics on a damaged page), and a node in that state must not tell a
// load balancer or an orchestrator it is fine. /readyz answers 503 and
// /v1/status ready=false until the node is restarted.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v) // net/http's own way to cut a response
			}
			cause := fmt.Sprint(v)
			s.panicked.CompareAndSwap(nil, &cause)
			log := s.log
			if log == nil {
				log = slog.Default()
			}
			log.Error("admin API request handler panicked; the node reports not ready until it is restarted",
				"method", r.Method, "path", r.URL.Path, "panic", cause, "stack", string(debug.Stack()))
			writeError(w, &Error{Code: "internal", Message: "the node failed serving this request (" + cause + "); it reports not ready until it is restarted", Status: http.StatusInternalServerError})
		}()
		next.ServeHTTP(w, r)
	})
}

// Panicked is the cause of the first panic in a request handler, or "".
func (s *Server) Panicked() string {
	if p := s.panicked.Load(); p != nil {
		return *p
	}
	return ""
}
