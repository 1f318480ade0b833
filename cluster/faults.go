package cluster

import (
	"context"
	"errors"
	"fmt"

	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// FaultRule is one network fault in force. Rules add up; Heal clears them.
type FaultRule struct {
	// Kind is "partition" (an AZ from the others), "isolate" (one HSM from
	// every other) or "latency" (added between two AZs, both ways).
	Kind    string   `json:"kind"`
	AZ      string   `json:"az,omitempty"`
	HsmID   string   `json:"hsm_id,omitempty"`
	Between []string `json:"between,omitempty"`
	DelayMs uint32   `json:"delay_ms,omitempty"`
}

// Kill stops an HSM process at once (SIGKILL).
func (m *Manager) Kill(hsmID string) error {
	_, h, err := m.findHsm(hsmID)
	if err != nil {
		return err
	}
	m.log.Info("fault: kill", "hsm_id", hsmID, "pid", h.Runtime.PID)
	return m.prov.Kill(h.Runtime)
}

// Pause freezes an HSM process (SIGSTOP).
func (m *Manager) Pause(hsmID string) error {
	_, h, err := m.findHsm(hsmID)
	if err != nil {
		return err
	}
	m.log.Info("fault: pause", "hsm_id", hsmID, "pid", h.Runtime.PID)
	return m.prov.Pause(h.Runtime)
}

// Resume thaws a paused HSM (SIGCONT).
func (m *Manager) Resume(hsmID string) error {
	_, h, err := m.findHsm(hsmID)
	if err != nil {
		return err
	}
	m.log.Info("fault: resume", "hsm_id", hsmID, "pid", h.Runtime.PID)
	return m.prov.Resume(h.Runtime)
}

// Restart starts a stopped HSM again (stopping it first if it runs) and
// reapplies the faults in force to it.
func (m *Manager) Restart(ctx context.Context, hsmID string) error {
	_, h, err := m.findHsm(hsmID)
	if err != nil {
		return err
	}
	if m.prov.Running(h.Runtime) {
		if err := m.prov.Stop(ctx, h.Runtime); err != nil {
			return err
		}
	}
	rt, err := m.prov.Restart(ctx, h.Runtime)
	if err != nil {
		return err
	}
	if err := m.store.Update(func(st *State) error {
		for _, c := range st.Clusters {
			if x := c.Hsm(hsmID); x != nil {
				x.Runtime = rt
			}
		}
		return nil
	}); err != nil {
		return err
	}
	m.log.Info("fault: restart", "hsm_id", hsmID, "pid", rt.PID)
	return m.applyFaults(ctx)
}

// PartitionAZ cuts every HSM in az off from every HSM outside it.
func (m *Manager) PartitionAZ(ctx context.Context, az string) error {
	return m.addFault(ctx, FaultRule{Kind: "partition", AZ: az})
}

// Isolate cuts one HSM off from every other.
func (m *Manager) Isolate(ctx context.Context, hsmID string) error {
	if _, _, err := m.findHsm(hsmID); err != nil {
		return err
	}
	return m.addFault(ctx, FaultRule{Kind: "isolate", HsmID: hsmID})
}

// Latency adds delay to traffic between two AZs, both ways.
func (m *Manager) Latency(ctx context.Context, az1, az2 string, ms uint32) error {
	if az1 == az2 || ms == 0 {
		return fmt.Errorf("%w: latency needs two different AZs and a positive delay", ErrInvalidRequest)
	}
	return m.addFault(ctx, FaultRule{Kind: "latency", Between: []string{az1, az2}, DelayMs: ms})
}

// Heal clears every network fault.
func (m *Manager) Heal(ctx context.Context) error {
	if err := m.store.Update(func(st *State) error {
		st.Faults = nil
		return nil
	}); err != nil {
		return err
	}
	m.log.Info("fault: heal")
	return m.applyFaults(ctx)
}

func (m *Manager) addFault(ctx context.Context, r FaultRule) error {
	if err := m.store.Update(func(st *State) error {
		st.Faults = append(st.Faults, r)
		return nil
	}); err != nil {
		return err
	}
	m.log.Info("fault: "+r.Kind, "az", r.AZ, "hsm_id", r.HsmID, "between", r.Between, "delay_ms", r.DelayMs)
	return m.applyFaults(ctx)
}

// applyFaults computes each HSM's link faults from the rules and pushes the
// whole list to every running HSM of every cluster.
func (m *Manager) applyFaults(ctx context.Context) error {
	st, err := m.store.Load()
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range st.Clusters {
		for _, h := range c.Hsms {
			if !m.prov.Running(h.Runtime) {
				continue
			}
			faults := linkFaults(st.Faults, c, h)
			conn, err := m.dial(c, h)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			_, err = hsmv1.NewClusterServiceClient(conn).SetFaults(ctx, &hsmv1.SetFaultsRequest{Faults: faults})
			conn.Close()
			if err != nil {
				errs = append(errs, fmt.Errorf("%w: set faults on %s: %w", ErrHSM, h.HsmID, err))
			}
		}
	}
	return errors.Join(errs...)
}

// linkFaults returns what HSM h of cluster c must do to each of its peers.
func linkFaults(rules []FaultRule, c *Cluster, h *HSM) []*hsmv1.LinkFault {
	var out []*hsmv1.LinkFault
	for _, p := range c.Hsms {
		if p.HsmID == h.HsmID {
			continue
		}
		f := &hsmv1.LinkFault{Peer: p.Runtime.RaftAddr}
		for _, r := range rules {
			switch r.Kind {
			case "partition":
				if (h.AvailabilityZone == r.AZ) != (p.AvailabilityZone == r.AZ) {
					f.Blocked = true
				}
			case "isolate":
				if h.HsmID == r.HsmID || p.HsmID == r.HsmID {
					f.Blocked = true
				}
			case "latency":
				a, b := r.Between[0], r.Between[1]
				if (h.AvailabilityZone == a && p.AvailabilityZone == b) || (h.AvailabilityZone == b && p.AvailabilityZone == a) {
					f.DelayMs += r.DelayMs
				}
			}
		}
		if f.Blocked || f.DelayMs > 0 {
			out = append(out, f)
		}
	}
	return out
}

func (m *Manager) findHsm(hsmID string) (*Cluster, *HSM, error) {
	st, err := m.store.Load()
	if err != nil {
		return nil, nil, err
	}
	for _, c := range st.Clusters {
		if h := c.Hsm(hsmID); h != nil {
			return c, h, nil
		}
	}
	return nil, nil, fmt.Errorf("%w: HSM %s", ErrNotFound, hsmID)
}
