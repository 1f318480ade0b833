package client

import (
	"context"
	"time"
)

// HSMHealth is the Client's view of one HSM.
type HSMHealth struct {
	// ID, AZ and Addr are the endpoint's.
	ID, AZ, Addr string
	// Healthy says the HSM is reachable and the Client holds a session
	// there: calls may go to it.
	Healthy bool
	// LastError is the last connection, session or login failure seen on
	// this HSM ("" after a successful login).
	LastError string
	// Outstanding is the number of calls in flight on it.
	Outstanding int
	// Served counts the calls it completed successfully.
	Served uint64
	// Batched counts the calls that went to it in a Batch with others.
	Batched uint64
}

// Health returns the state of every HSM, in the order of Config.Endpoints.
func (c *Client) Health() []HSMHealth {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]HSMHealth, len(c.hsms))
	for i, h := range c.hsms {
		out[i] = HSMHealth{
			ID: h.ep.ID, AZ: h.ep.AZ, Addr: h.ep.Addr,
			Healthy: h.usable(), LastError: h.lastErr, Outstanding: h.outstanding, Served: h.served, Batched: h.batched,
		}
	}
	return out
}

// healthLoop probes, every HealthInterval, the HSMs that are unhealthy or
// have no session, by logging in again. An HSM that accepts is used again
// at once: least-outstanding-requests spreading sends it calls.
func (c *Client) healthLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.HealthInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		c.mu.Lock()
		for _, h := range c.hsms {
			if !h.usable() && !now.Before(h.nextProbe) {
				c.startProbeLocked(h)
			}
		}
		c.mu.Unlock()
	}
}

// startProbeLocked starts a re-login on h unless one runs or the Client is
// closed. c.mu must be held.
func (c *Client) startProbeLocked(h *hsm) {
	if h.probing || c.closed {
		return
	}
	h.probing = true
	c.wg.Add(1)
	go c.probe(h)
}

// probe logs in on h again.
func (c *Client) probe(h *hsm) {
	defer c.wg.Done()
	c.mu.Lock()
	wasHealthy := h.healthy
	c.mu.Unlock()
	if !wasHealthy {
		// Reconnect now rather than at the end of grpc-go's backoff.
		h.conn.ResetConnectBackoff()
	}
	ctx, cancel := context.WithTimeout(c.ctx, loginTimeout)
	err := c.login(ctx, h)
	cancel()
	c.mu.Lock()
	h.probing = false
	c.mu.Unlock()
	switch {
	case err == nil && !wasHealthy:
		c.log.Info("hsm healthy again", "hsm_id", h.ep.ID, "addr", h.ep.Addr)
	case err == nil:
		c.log.Debug("session renewed", "hsm_id", h.ep.ID)
	case c.ctx.Err() == nil:
		c.log.Debug("hsm probe failed", "hsm_id", h.ep.ID, "error", err)
	}
}
