package node

import (
	"github.com/hashicorp/raft"
)

// replicaApplied returns the highest log index whose effects this replica's
// key database shows.
//
// Raft's own applied index is not it: hashicorp/raft advances it when it
// hands a batch of entries to the FSM goroutine, before the FSM has applied
// them (raft.go processLogs), so just after a restart it can be far ahead of
// the replica. The FSM's index is not it either: the FSM only sees commands,
// so it stays below the no-op a new leader commits and below configuration
// changes. The replica has applied Raft's index when no command lies between
// the two: the entries after the FSM's index are then only entries that the
// FSM never sees. Entries no longer in the log were compacted into a
// snapshot, which was taken from an FSM that had applied them.
func (n *Node) replicaApplied(r *raft.Raft) uint64 {
	raftApplied, fsmApplied := r.AppliedIndex(), n.fsm.AppliedIndex()
	n.mu.Lock()
	store := n.store
	n.mu.Unlock()
	if store == nil {
		return fsmApplied
	}
	for i := fsmApplied + 1; i <= raftApplied; i++ {
		var l raft.Log
		if err := store.GetLog(i, &l); err == nil && l.Type == raft.LogCommand {
			return fsmApplied
		}
	}
	return max(raftApplied, fsmApplied)
}

// LastIndex returns the index of the last entry in this HSM's Raft log or
// snapshot, committed or not; 0 before it is a member.
func (n *Node) LastIndex() uint64 {
	r, err := n.raftNode()
	if err != nil {
		return 0
	}
	return r.LastIndex()
}
