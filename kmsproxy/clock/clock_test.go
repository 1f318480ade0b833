package clock_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/kmsproxy/clock"
)

func TestAdvanceAndPersist(t *testing.T) {
	path := filepath.Join(t.TempDir(), "clock.json")
	c, err := clock.New(path)
	require.NoError(t, err)
	before := c.Now()
	after, err := c.Advance(30 * 24 * time.Hour)
	require.NoError(t, err)
	require.GreaterOrEqual(t, after.Sub(before), 30*24*time.Hour)
	_, err = c.Advance(0)
	require.Error(t, err)
	_, err = c.Advance(-time.Hour)
	require.Error(t, err)

	again, err := clock.New(path)
	require.NoError(t, err)
	require.Equal(t, 30*24*time.Hour, again.Offset(), "the offset survives a restart")
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"30d", 30 * 24 * time.Hour, false},
		{"1d12h", 36 * time.Hour, false},
		{"90m", 90 * time.Minute, false},
		{"365d", 365 * 24 * time.Hour, false},
		{"soon", 0, true},
		{"3x", 0, true},
	}
	for _, tt := range tests {
		got, err := clock.ParseDuration(tt.in)
		if tt.wantErr {
			require.Error(t, err, tt.in)
			continue
		}
		require.NoError(t, err, tt.in)
		require.Equal(t, tt.want, got, tt.in)
	}
}
