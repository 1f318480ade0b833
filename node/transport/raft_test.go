package transport_test

import (
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/node/transport"
)

// newRaftTransport returns a raft.NetworkTransport over s.
func newRaftTransport(t *testing.T, s *transport.StreamLayer) *raft.NetworkTransport {
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  s,
		MaxPool: 2,
		Timeout: waitFor,
		Logger:  testLogger(t),
	})
	t.Cleanup(func() { _ = trans.Close() })
	return trans
}

// answer serves every AppendEntries RPC reaching trans with a success echoing the term.
func answer(trans *raft.NetworkTransport, stop <-chan struct{}) {
	for {
		select {
		case rpc := <-trans.Consumer():
			req, ok := rpc.Command.(*raft.AppendEntriesRequest)
			if !ok {
				rpc.Respond(nil, nil)
				continue
			}
			rpc.Respond(&raft.AppendEntriesResponse{
				RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("n2")},
				Term:      req.Term,
				LastLog:   req.PrevLogEntry + uint64(len(req.Entries)),
				Success:   true,
			}, nil)
		case <-stop:
			return
		}
	}
}

func TestRaftNetworkTransportRoundTrip(t *testing.T) {
	c := newCluster(t)
	n1 := newLayer(t, c.cert, c.ca.Cert, clusterID)
	n2 := newLayer(t, c.cert, c.ca.Cert, clusterID)
	t1 := newRaftTransport(t, n1)
	t2 := newRaftTransport(t, n2)
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go answer(t2, stop)

	send := func(term uint64) (*raft.AppendEntriesResponse, error) {
		req := &raft.AppendEntriesRequest{
			RPCHeader:         raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("n1"), Addr: []byte(t1.LocalAddr())},
			Term:              term,
			PrevLogEntry:      10,
			PrevLogTerm:       term,
			Entries:           []*raft.Log{{Index: 11, Term: term, Type: raft.LogCommand, Data: []byte("put k v"), AppendedAt: time.Now()}},
			LeaderCommitIndex: 10,
		}
		var resp raft.AppendEntriesResponse
		err := t1.AppendEntries("n2", t2.LocalAddr(), req, &resp)
		return &resp, err
	}

	resp, err := send(3)
	require.NoError(t, err)
	require.True(t, resp.Success)
	require.Equal(t, uint64(3), resp.Term)
	require.Equal(t, uint64(11), resp.LastLog)

	// Blocking n2 closes the pooled connection and refuses new ones.
	n1.Faults().Block(string(t2.LocalAddr()))
	_, err = send(4)
	require.ErrorIs(t, err, transport.ErrBlocked)
	_, err = send(4)
	require.ErrorIs(t, err, transport.ErrBlocked)

	// After Heal raft redials and the RPC goes through.
	n1.Faults().Heal()
	require.Eventually(t, func() bool {
		resp, err := send(5)
		return err == nil && resp.Success && resp.Term == 5
	}, waitFor, tick)
}
