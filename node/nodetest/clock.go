package nodetest

import (
	"sync"
	"time"

	"github.com/hsmsim/hsmsim/node"
)

// Clock is a clock tests advance by hand, for node.Config.Clock. It is safe
// for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock that reads start until it is advanced.
func NewClock(start time.Time) *Clock {
	return &Clock{now: start}
}

// Now returns the clock's time; pass the method value as node.Config.Clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Steady lengthens a node's Raft timeouts (300 ms heartbeat, election and
// leader lease, against the harness's 100/100/50 ms) for tests that do not
// exercise failover: on a loaded machine (-race, packages testing in
// parallel) a short lease makes a leader step down mid-test, failing writes
// with Unavailable. Pass it, or call it from, a configure function.
func Steady(cfg *node.Config) {
	cfg.HeartbeatTimeout = 300 * time.Millisecond
	cfg.ElectionTimeout = 300 * time.Millisecond
	cfg.LeaderLeaseTimeout = 300 * time.Millisecond
}
