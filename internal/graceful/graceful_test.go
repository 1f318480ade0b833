package graceful_test

import (
	"context"
	"errors"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/internal/graceful"
)

func TestStop(t *testing.T) {
	errStop := errors.New("stop failed")
	tests := []struct {
		name string
		// signals are sent before Stop runs.
		signals int
		// wantCut says shutdown's context ends before the timeout.
		wantCut bool
		err     error
	}{
		{name: "one signal: a graceful stop", signals: 1},
		{name: "a second signal cuts it short", signals: 2, wantCut: true},
		{name: "shutdown's error is returned", signals: 1, err: errStop},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sigs := make(chan os.Signal, 2)
			for range tt.signals {
				sigs <- syscall.SIGTERM
			}
			cut := false
			err := graceful.Stop(hclog.NewNullLogger(), sigs, time.Minute, func(ctx context.Context) error {
				select {
				case <-ctx.Done():
					cut = true
				case <-time.After(200 * time.Millisecond):
				}
				return tt.err
			})
			require.ErrorIs(t, err, tt.err)
			require.Equal(t, tt.wantCut, cut)
		})
	}
}
