package client

import (
	"errors"
	"slices"
	"time"
)

// SetEndpoints makes eps the Client's HSMs, as a cluster gains and loses
// HSMs: an HSM not yet known is dialed and logged in to in the background
// (calls go to it once it has a session), and an HSM no longer listed gets
// no new calls and is disconnected once its calls in flight end (at most
// AttemptTimeout later), which ends the Client's session there. An
// endpoint is known by its ID and address. Endpoints that cannot be dialed
// are skipped and reported in the error; the others are applied.
func (c *Client) SetEndpoints(eps []Endpoint) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	var (
		next    []*hsm
		errs    []error
		removed []*hsm
	)
	for _, ep := range eps {
		i := slices.IndexFunc(c.hsms, func(h *hsm) bool { return h.ep.ID == ep.ID && h.ep.Addr == ep.Addr })
		if i >= 0 {
			next = append(next, c.hsms[i])
			continue
		}
		h, err := c.dial(ep)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c.log.Info("hsm added", "hsm_id", ep.ID, "addr", ep.Addr)
		next = append(next, h)
		c.startProbeLocked(h)
	}
	for _, h := range c.hsms {
		if !slices.Contains(next, h) {
			c.log.Info("hsm removed", "hsm_id", h.ep.ID, "addr", h.ep.Addr)
			removed = append(removed, h)
		}
	}
	c.hsms = next
	if len(next) > 0 {
		c.next %= len(next)
	}
	for _, h := range removed {
		c.wg.Add(1)
		go c.retire(h)
	}
	return errors.Join(errs...)
}

// retire closes a removed HSM's connection once no call is in flight on it,
// or after AttemptTimeout, or when the Client closes.
func (c *Client) retire(h *hsm) {
	defer c.wg.Done()
	deadline := time.Now().Add(c.cfg.AttemptTimeout)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		busy := h.outstanding > 0
		c.mu.Unlock()
		if !busy {
			break
		}
		select {
		case <-c.ctx.Done():
			deadline = time.Now()
		case <-time.After(10 * time.Millisecond):
		}
	}
	h.conn.Close()
}
