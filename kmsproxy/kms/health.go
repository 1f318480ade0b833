package kms

import (
	"context"
	"crypto/tls"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"

	"github.com/hsmsim/hsmsim/cluster"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// Timing of the health view (healthView).
const (
	// healthInterval is how often a cluster's HSMs in use are probed.
	healthInterval = 250 * time.Millisecond
	// healthMaxAge is how old a probe's answer may be and still count;
	// an older one is refreshed before it is used.
	healthMaxAge = time.Second
	// healthProbeTimeout bounds one probe over a persistent connection.
	healthProbeTimeout = 500 * time.Millisecond
	// healthIdle is how long a cluster's probes go on after the last
	// request that asked for its health.
	healthIdle = 30 * time.Second
	// recordMaxAge is how old a cluster record CreateKey uses may be: the
	// control plane's record is a file that the Manager reads and decodes
	// in full per call (a fifth of CreateKey's CPU time when read per key).
	recordMaxAge = 250 * time.Millisecond
	// healthMaxReconnectDelay caps the reconnection backoff of a probe
	// connection, so that an HSM that comes back is seen within about a
	// second (grpc-go's default backoff reaches two minutes).
	healthMaxReconnectDelay = 500 * time.Millisecond
)

// healthView is KMS's current view of which HSMs of a cluster answer, for
// CreateKey's rule (two active HSMs in different AZs, reference §4.4),
// without a TLS handshake per request (reachableHSMs costs one per HSM,
// several milliseconds).
//
// Per cluster in use, it keeps one persistent, verified gRPC connection
// per HSM and probes each with GetStatus every healthInterval while
// requests ask. An HSM counts when its latest probe, at most healthMaxAge
// old, said "active" and its connection is still up: a killed HSM's
// connection drops at once, so it stops counting within milliseconds; a
// paused one fails its next probe, within healthInterval plus
// healthProbeTimeout. A request that finds an answer too old (a cluster
// not probed lately, or probes starved of CPU) waits for a fresh probe
// rather than trust or refuse it. A cluster no request asked about for
// healthIdle is forgotten (its connections closed).
type healthView struct {
	// ctx ends with the Service; wg counts the probe goroutines.
	ctx context.Context
	wg  *sync.WaitGroup

	mu       sync.Mutex
	clusters map[string]*clusterHealth
	// records are recently read cluster records, by id.
	records map[string]clusterRecord
}

// clusterRecord is a cluster record and when it was read.
type clusterRecord struct {
	c  *cluster.Cluster
	at time.Time
}

func newHealthView(ctx context.Context, wg *sync.WaitGroup) *healthView {
	return &healthView{ctx: ctx, wg: wg, clusters: map[string]*clusterHealth{}, records: map[string]clusterRecord{}}
}

// record returns cluster id's record as load returns it, read at most
// recordMaxAge ago. The record is shared: callers must not change it.
// Failures are not remembered.
func (v *healthView) record(id string, load func(string) (*cluster.Cluster, error)) (*cluster.Cluster, error) {
	now := time.Now()
	v.mu.Lock()
	r, found := v.records[id]
	v.mu.Unlock()
	if found && now.Sub(r.at) <= recordMaxAge {
		return r.c, nil
	}
	c, err := load(id)
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	if len(v.records) > 64 {
		clear(v.records)
	}
	v.records[id] = clusterRecord{c: c, at: now}
	v.mu.Unlock()
	return c, nil
}

// clusterHealth is the health view of one cluster.
type clusterHealth struct {
	v *healthView
	// anchor and certID are what the connections verify (the cluster
	// record's trust anchor and certificate id); conf is their TLS.
	anchor, certID string
	conf           *tls.Config
	// stop ends the cluster's probe loop.
	stop context.CancelFunc

	mu sync.Mutex
	// hsms are keyed by API address.
	hsms     map[string]*probedHSM
	lastUsed time.Time
	stopped  bool
}

// probedHSM is one HSM's connection and latest probe. Its fields but conn
// and addr are guarded by clusterHealth.mu.
type probedHSM struct {
	addr string
	conn *grpc.ClientConn
	api  hsmv1.ClusterServiceClient

	// ok is the latest probe's answer, at when it came.
	ok bool
	at time.Time
	// call is the probe in flight, nil when none.
	call *probeCall
	// lastUsed is when a request last asked about this HSM.
	lastUsed time.Time
}

// probeCall is one probe, which several requests may wait for.
type probeCall struct {
	done chan struct{}
	ok   bool
}

// answering returns the HSMs of c that answer as active (the control
// plane lists them ACTIVE or DEGRADED, and they answer GetStatus
// "active"), by the view's current knowledge.
func (v *healthView) answering(ctx context.Context, c *cluster.Cluster) []*cluster.HSM {
	// A view that went idle between the lookup and the question is
	// started again: once.
	for range 2 {
		ch := v.cluster(c)
		if ch == nil {
			return nil
		}
		if out, live := ch.answering(ctx, c); live {
			return out
		}
	}
	return nil
}

// cluster returns the view of c, started when needed.
func (v *healthView) cluster(c *cluster.Cluster) *clusterHealth {
	v.mu.Lock()
	defer v.mu.Unlock()
	ch := v.clusters[c.ClusterID]
	if ch != nil && (ch.anchor != c.TrustAnchor || ch.certID != c.CertificateID || ch.isStopped()) {
		// Another trust (a record that changed) or an idle view: start over.
		ch.close()
		ch = nil
	}
	if ch == nil {
		anchor, err := parseCertPEM(c.TrustAnchor)
		if err != nil || v.ctx.Err() != nil {
			return nil
		}
		ctx, stop := context.WithCancel(v.ctx)
		ch = &clusterHealth{v: v, anchor: c.TrustAnchor, certID: c.CertificateID, conf: probeTLS(anchor, c.CertificateID),
			stop: stop, hsms: map[string]*probedHSM{}, lastUsed: time.Now()}
		v.clusters[c.ClusterID] = ch
		v.wg.Add(1)
		go ch.loop(ctx)
	}
	return ch
}

func (ch *clusterHealth) isStopped() bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.stopped
}

// answering is healthView.answering for this cluster; live is false
// when the view had stopped (idle), and out means nothing.
func (ch *clusterHealth) answering(ctx context.Context, c *cluster.Cluster) (out []*cluster.HSM, live bool) {
	type pending struct {
		h    *cluster.HSM
		call *probeCall
	}
	var wait []pending
	now := time.Now()
	ch.mu.Lock()
	if ch.stopped {
		ch.mu.Unlock()
		return nil, false
	}
	ch.lastUsed = now
	for _, h := range c.Hsms {
		if (h.State != cluster.HsmActive && h.State != cluster.HsmDegraded) || h.Runtime.APIAddr == "" {
			continue
		}
		ph := ch.hsmLocked(h.Runtime.APIAddr)
		if ph == nil {
			continue
		}
		ph.lastUsed = now
		if ph.call == nil && now.Sub(ph.at) <= healthMaxAge {
			if ph.ok && ph.conn.GetState() == connectivity.Ready {
				out = append(out, h)
			}
			continue
		}
		wait = append(wait, pending{h, ch.startLocked(ph)})
	}
	ch.mu.Unlock()
	for _, w := range wait {
		select {
		case <-w.call.done:
			if w.call.ok {
				out = append(out, w.h)
			}
		case <-ctx.Done():
			return out, true
		}
	}
	return out, true
}

// hsmLocked returns the HSM at addr, connecting to it the first time; nil
// when the connection cannot be set up. ch.mu must be held.
func (ch *clusterHealth) hsmLocked(addr string) *probedHSM {
	if ph := ch.hsms[addr]; ph != nil {
		return ph
	}
	if ch.stopped {
		return nil
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(ch.conf)),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: healthMaxReconnectDelay},
			MinConnectTimeout: healthProbeTimeout,
		}))
	if err != nil {
		return nil
	}
	ph := &probedHSM{addr: addr, conn: conn, api: hsmv1.NewClusterServiceClient(conn)}
	ch.hsms[addr] = ph
	return ph
}

// startLocked starts a probe of ph unless one runs, and returns it. ch.mu
// must be held.
func (ch *clusterHealth) startLocked(ph *probedHSM) *probeCall {
	if ph.call != nil {
		return ph.call
	}
	call := &probeCall{done: make(chan struct{})}
	ph.call = call
	ch.v.wg.Add(1)
	go func() {
		defer ch.v.wg.Done()
		ok := ch.probe(ph)
		ch.mu.Lock()
		ph.ok, ph.at, ph.call = ok, time.Now(), nil
		ch.mu.Unlock()
		call.ok = ok
		close(call.done)
	}()
	return call
}

// probe asks the HSM its state, over its persistent connection.
func (ch *clusterHealth) probe(ph *probedHSM) bool {
	if st := ph.conn.GetState(); st == connectivity.TransientFailure || st == connectivity.Idle {
		// Reconnect now rather than at the end of the backoff.
		ph.conn.ResetConnectBackoff()
	}
	ctx, cancel := context.WithTimeout(ch.v.ctx, healthProbeTimeout)
	defer cancel()
	st, err := ph.api.GetStatus(ctx, &hsmv1.GetStatusRequest{})
	return err == nil && st.GetState() == "active"
}

// loop probes the HSMs requests asked about, every healthInterval, until
// the Service ends or no request asked for healthIdle.
func (ch *clusterHealth) loop(ctx context.Context) {
	defer ch.v.wg.Done()
	defer ch.close()
	t := time.NewTicker(healthInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		ch.mu.Lock()
		if now.Sub(ch.lastUsed) > healthIdle {
			ch.mu.Unlock()
			return
		}
		for addr, ph := range ch.hsms {
			if now.Sub(ph.lastUsed) > healthIdle {
				// No longer in the cluster's record.
				delete(ch.hsms, addr)
				ph.conn.Close()
				continue
			}
			ch.startLocked(ph)
		}
		ch.mu.Unlock()
	}
}

// close stops the probes and closes the connections. A probe in flight
// fails on its closed connection.
func (ch *clusterHealth) close() {
	ch.stop()
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.stopped {
		return
	}
	ch.stopped = true
	for _, ph := range ch.hsms {
		ph.conn.Close()
	}
}
