// Command groupcached runs one node of a groupcached cluster: a peer-filling read-through
// cache that answers GET /groups/{group}/keys/{key} over HTTP, fills each missing key once
// per cluster from its origin (files, an HTTP service, a SQL database), and finds its peers
// by gossip.
//
// This file only wires: flags and configuration (config.go), the node that configuration
// describes (node.go builds an httpapi.Node from it), run, and a graceful stop on SIGINT or
// SIGTERM. Exit status: 0 after a clean stop, 2 for a
// configuration mistake (reported with its file and line), 1 for any other failure.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/groupcached/groupcached/group"
	"github.com/groupcached/groupcached/httpapi"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr))
}

// run runs the node until SIGINT, SIGTERM or the end of ctx, and returns the exit status.
// Only -version writes to stdout; logs and errors go to stderr.
func run(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) int {
	flags, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	if flags.Version {
		fmt.Fprintln(stdout, httpapi.ReadBuildInfo())
		return 0
	}
	cfg, err := loadConfig(flags, lookupEnv)
	if err != nil {
		fmt.Fprintf(stderr, "groupcached: invalid configuration:\n%v\n", err)
		return 2
	}
	level, _ := parseLogLevel(cfg.Node.LogLevel)
	logger := newLogger(stderr, cfg.Node.LogFormat, level)
	logger.Info("configuration loaded", "config", cfg.File)
	if msg, attrs := cfg.insecureWarning(); msg != "" {
		logger.Warn(msg, attrs...)
	}

	ctx, stopSignals := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stopSignals()

	n, err := newNode(cfg, logger)
	if err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			fmt.Fprintf(stderr, "groupcached: invalid configuration:\n%v\n", err)
			return 2
		}
		logger.Error("cannot build the node", "err", err)
		return 1
	}
	if err := n.Start(ctx); err != nil {
		logger.Error("cannot start the node", "err", err)
		return 1
	}
	if _, set := lookupEnv("GOMEMLIMIT"); !set {
		debug.SetMemoryLimit(cfg.memoryLimit())
		logger.Info("memory limit set", "bytes", group.ByteSize(cfg.memoryLimit()).String())
	}

	status := 0
	select {
	case <-ctx.Done():
		logger.Info("signal received; stopping gracefully (a second signal stops at once)")
	case err := <-n.Failed():
		logger.Error("HTTP server failed", "err", err)
		status = 1
	}
	stopSignals() // from here a second SIGINT or SIGTERM ends the process at once

	// The node bounds its own stop (httpapi.NodeConfig.StopTimeout).
	if err := n.Stop(context.Background()); err != nil {
		logger.Error("graceful stop incomplete", "err", err)
		status = 1
	}
	return status
}
