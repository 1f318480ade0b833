// Package graceful stops a long-running program on a signal: the first
// one starts a bounded graceful stop, a second one cuts it short.
package graceful

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Stop waits for a signal on signals, then runs shutdown with a context that
// ends after timeout, or at once when a second signal comes. It returns
// shutdown's error.
func Stop(log hclog.Logger, signals <-chan os.Signal, timeout time.Duration, shutdown func(context.Context) error) error {
	sig := <-signals
	log.Info("shutting down", "signal", fmt.Sprint(sig), "timeout", timeout.String())
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	closed := make(chan struct{})
	go func() {
		select {
		case sig := <-signals:
			log.Warn("second signal, stopping now", "signal", fmt.Sprint(sig))
			cancel()
		case <-closed:
		}
	}()
	err := shutdown(ctx)
	close(closed)
	return err
}
