package keydb

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	hsmfsmv1 "github.com/hsmsim/hsmsim/proto/hsmfsm/v1"
)

// Request deduplication (Raft thesis §6.3, "implementing linearizable
// semantics"): a client that does not know whether its write was applied
// (the leader died, the connection broke, its deadline passed) sends it
// again with the same request id, and the state machine, not the client,
// makes sure it takes effect once.
const (
	// RequestIDSize is the size of a request id (Command.request_id).
	RequestIDSize = 16
	// MaxAppliedRequests is the most request ids remembered. The oldest by
	// index is forgotten first; a retry that comes after 10,000 later
	// deduplicated writes is applied again. Clients retry within seconds,
	// so the bound is generous while keeping snapshots small (about 100
	// bytes an entry).
	MaxAppliedRequests = 10000
)

// requestTable remembers the result of the first command that carried each
// request id. It is part of the state: deterministic, in snapshots.
type requestTable struct {
	// byID maps string(request id) to its entry.
	byID map[string]*hsmfsmv1.AppliedRequest
	// order holds the entries oldest first (by index, the order Apply
	// added them): the eviction order.
	order []*hsmfsmv1.AppliedRequest
}

func newRequestTable() requestTable {
	return requestTable{byID: make(map[string]*hsmfsmv1.AppliedRequest)}
}

// commandNumber returns the field number of cmd's oneof case (0 for none).
func commandNumber(cmd *hsmfsmv1.Command) uint32 {
	m := cmd.ProtoReflect()
	fd := m.WhichOneof(m.Descriptor().Oneofs().ByName("command"))
	if fd == nil {
		return 0
	}
	return uint32(fd.Number())
}

// commandActor returns the user on whose behalf cmd runs, "" for commands
// that have none (cluster lifecycle, members, login counters).
func commandActor(cmd *hsmfsmv1.Command) string {
	switch c := cmd.GetCommand().(type) {
	case *hsmfsmv1.Command_CreateUser:
		return c.CreateUser.GetActor()
	case *hsmfsmv1.Command_DeleteUser:
		return c.DeleteUser.GetActor()
	case *hsmfsmv1.Command_SetPassword:
		return c.SetPassword.GetActor()
	case *hsmfsmv1.Command_CreateKey:
		return c.CreateKey.GetActor()
	case *hsmfsmv1.Command_DeleteKey:
		return c.DeleteKey.GetActor()
	case *hsmfsmv1.Command_SetKeyAttribute:
		return c.SetKeyAttribute.GetActor()
	case *hsmfsmv1.Command_ShareKey:
		return c.ShareKey.GetActor()
	case *hsmfsmv1.Command_UnshareKey:
		return c.UnshareKey.GetActor()
	case *hsmfsmv1.Command_SetQuorumValue:
		return c.SetQuorumValue.GetActor()
	case *hsmfsmv1.Command_RegisterQuorumKey:
		return c.RegisterQuorumKey.GetActor()
	case *hsmfsmv1.Command_CreateQuorumToken:
		return c.CreateQuorumToken.GetRequester()
	case *hsmfsmv1.Command_ApproveQuorumToken:
		return c.ApproveQuorumToken.GetApprover()
	}
	return ""
}

// applyOnce applies cmd, committed at index, unless its request id has
// been seen: then it returns the remembered result and changes nothing.
// A command without a request id is simply applied.
func (s *state) applyOnce(index uint64, cmd *hsmfsmv1.Command) *hsmfsmv1.Result {
	id := cmd.GetRequestId()
	if len(id) == 0 {
		return s.apply(cmd)
	}
	e, r := s.lookup(cmd)
	if r != nil {
		return r
	}
	if e != nil {
		return proto.CloneOf(e.GetResult())
	}
	res := s.apply(cmd)
	s.requests.add(&hsmfsmv1.AppliedRequest{
		RequestId: id, Index: index, Command: commandNumber(cmd), Actor: commandActor(cmd), Result: proto.CloneOf(res),
	})
	return res
}

// lookup returns the remembered entry of cmd's request id (nil when the id
// is new), or a failure when the id is malformed or was used for a command
// of another type or actor.
func (s *state) lookup(cmd *hsmfsmv1.Command) (*hsmfsmv1.AppliedRequest, *hsmfsmv1.Result) {
	id := cmd.GetRequestId()
	if len(id) != RequestIDSize {
		return nil, fail(codeInvalid, "request id must be %d bytes, got %d", RequestIDSize, len(id))
	}
	e, seen := s.requests.byID[string(id)]
	if !seen {
		return nil, nil
	}
	if e.GetCommand() != commandNumber(cmd) || e.GetActor() != commandActor(cmd) {
		return nil, fail(codeInvalid, "the request id was already used for another request")
	}
	return e, nil
}

// add remembers e, the newest entry, evicting the oldest beyond
// MaxAppliedRequests.
func (t *requestTable) add(e *hsmfsmv1.AppliedRequest) {
	for len(t.order) >= MaxAppliedRequests {
		delete(t.byID, string(t.order[0].GetRequestId()))
		t.order[0] = nil
		t.order = t.order[1:]
	}
	t.byID[string(e.GetRequestId())] = e
	t.order = append(t.order, e)
}

// Replay returns what applying cmd would return if its request id is
// remembered for the same command type and actor: the first command's
// result and the index it was applied at. It changes nothing. The node
// uses it to answer a retried write whose first attempt made the request's
// own checks fail (a deleted key is no longer visible to its deletion).
func (db *DB) Replay(cmd *hsmfsmv1.Command) (*hsmfsmv1.Result, uint64, bool) {
	if len(cmd.GetRequestId()) == 0 {
		return nil, 0, false
	}
	db.mu.RLock()
	defer db.mu.RUnlock()
	e, r := db.s.lookup(cmd)
	if r != nil || e == nil {
		return nil, 0, false
	}
	return proto.CloneOf(e.GetResult()), e.GetIndex(), true
}

// AppliedRequest returns the remembered result of the command that first
// carried the request id, the log index it was applied at, and whether the
// id is remembered.
func (db *DB) AppliedRequest(id []byte) (*hsmfsmv1.Result, uint64, bool) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	e, ok := db.s.requests.byID[string(id)]
	if !ok {
		return nil, 0, false
	}
	return proto.CloneOf(e.GetResult()), e.GetIndex(), true
}

// restoreRequests rebuilds the table from a snapshot's entries, oldest
// first, and checks them.
func (s *state) restoreRequests(entries []*hsmfsmv1.AppliedRequest) error {
	if len(entries) > MaxAppliedRequests {
		return fmt.Errorf("%d applied requests, at most %d", len(entries), MaxAppliedRequests)
	}
	var last uint64
	for _, e := range entries {
		switch {
		case e == nil:
			return errors.New("nil applied request")
		case len(e.GetRequestId()) != RequestIDSize:
			return fmt.Errorf("applied request id of %d bytes", len(e.GetRequestId()))
		case e.GetResult() == nil:
			return fmt.Errorf("applied request %x without result", e.GetRequestId())
		case e.GetIndex() < last || e.GetIndex() > s.applied:
			return fmt.Errorf("applied request %x: index %d out of order", e.GetRequestId(), e.GetIndex())
		}
		if _, dup := s.requests.byID[string(e.GetRequestId())]; dup {
			return fmt.Errorf("duplicate applied request %x", e.GetRequestId())
		}
		last = e.GetIndex()
		s.requests.add(e)
	}
	return nil
}
