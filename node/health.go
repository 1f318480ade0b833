package node

import (
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// peerHealth tracks, on the leader, which followers fail their heartbeats,
// from Raft's own heartbeat observations.
type peerHealth struct {
	mu     sync.Mutex
	failed map[raft.ServerID]time.Time
}

func newPeerHealth() *peerHealth {
	return &peerHealth{failed: map[raft.ServerID]time.Time{}}
}

// observe registers with r and records heartbeat failures and recoveries
// until the returned stop is called. Raft delivers observations without
// blocking, under the lock DeregisterObserver takes, so closing the channel
// after deregistering is safe.
func (h *peerHealth) observe(r *raft.Raft) (stop func()) {
	ch := make(chan raft.Observation, 16)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.FailedHeartbeatObservation, raft.ResumedHeartbeatObservation, raft.LeaderObservation:
			return true
		}
		return false
	})
	r.RegisterObserver(obs)
	go func() {
		for o := range ch {
			h.mu.Lock()
			switch d := o.Data.(type) {
			case raft.FailedHeartbeatObservation:
				h.failed[d.PeerID] = d.LastContact
			case raft.ResumedHeartbeatObservation:
				delete(h.failed, d.PeerID)
			case raft.LeaderObservation:
				// A new leader starts with a clean slate.
				clear(h.failed)
			}
			h.mu.Unlock()
		}
	}()
	return func() {
		r.DeregisterObserver(obs)
		close(ch)
	}
}

// of returns the health of peer id as this HSM sees it.
func (h *peerHealth) of(r *raft.Raft, self, id raft.ServerID, blocked bool, heartbeat time.Duration) string {
	switch {
	case id == self:
		return "self"
	case blocked:
		return "blocked"
	}
	if r.State() == raft.Leader {
		h.mu.Lock()
		_, failing := h.failed[id]
		h.mu.Unlock()
		if failing {
			return "unreachable"
		}
		return "ok"
	}
	if _, leader := r.LeaderWithID(); leader == id {
		if time.Since(r.LastContact()) > 2*heartbeat {
			return "unreachable"
		}
		return "ok"
	}
	return "unknown"
}
