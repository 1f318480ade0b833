// Package clock is the endpoint's controllable clock: real time plus an
// offset that an admin call advances, so that a user can watch a key's
// deletion window pass without waiting a month. The offset is kept in a
// file so that it survives a restart.
package clock

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/hsmsim/hsmsim/internal/atomicfile"
)

// Clock is real time shifted by an offset that only grows. It is safe for
// concurrent use.
type Clock struct {
	mu     sync.RWMutex
	offset time.Duration
	path   string
	now    func() time.Time
}

type state struct {
	OffsetSeconds float64 `json:"offset_seconds"`
}

// New returns a clock whose offset is kept in path ("" keeps it in memory).
func New(path string) (*Clock, error) {
	c := &Clock{path: path, now: time.Now}
	if path == "" {
		return c, nil
	}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return c, nil
	case err != nil:
		return nil, fmt.Errorf("clock: %w", err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("clock: %s is corrupt: %w", path, err)
	}
	c.offset = time.Duration(st.OffsetSeconds * float64(time.Second))
	return c, nil
}

// Now is the simulated time, in UTC.
func (c *Clock) Now() time.Time {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.now().Add(c.offset).UTC()
}

// Offset is how far the clock runs ahead of real time.
func (c *Clock) Offset() time.Duration {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.offset
}

// Advance moves the clock forward by d (positive) and returns the new time.
func (c *Clock) Advance(d time.Duration) (time.Time, error) {
	if d <= 0 {
		return time.Time{}, errors.New("clock: the clock only moves forward")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	next := c.offset + d
	if c.path != "" {
		b, _ := json.Marshal(state{OffsetSeconds: next.Seconds()})
		if err := atomicfile.WriteFile(c.path, b, 0o600); err != nil {
			return time.Time{}, fmt.Errorf("clock: %w", err)
		}
	}
	c.offset = next
	return c.now().Add(c.offset).UTC(), nil
}

// ParseDuration parses Go durations and whole days ("30d", "1d12h").
func ParseDuration(s string) (time.Duration, error) {
	var days int
	rest := s
	if n, err := fmt.Sscanf(s, "%dd", &days); err == nil && n == 1 {
		for i, r := range s {
			if r == 'd' {
				rest = s[i+1:]
				break
			}
		}
	} else {
		days = 0
	}
	var d time.Duration
	if rest != "" {
		var err error
		if d, err = time.ParseDuration(rest); err != nil {
			return 0, fmt.Errorf("clock: %q is not a duration like 30d or 36h", s)
		}
	}
	return time.Duration(days)*24*time.Hour + d, nil
}
