package main

import (
	"io"
	"log/slog"
)

// Log formats (node.log_format).
const (
	logText = "text" // logfmt, key=value: for people and grep
	logJSON = "json" // one JSON object per line: for a log collector
)

// newLogger returns the node's logger: format (already validated) at level, written to w.
func newLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == logJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
