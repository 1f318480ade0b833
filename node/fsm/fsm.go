package fsm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/hsmsim/hsmsim/node/keydb"
	hsmfsmv1 "github.com/hsmsim/hsmsim/proto/hsmfsm/v1"
)

// ErrEmptyCommand is returned by Encode and Decode for a command with no
// command set: applying one would stop every replica.
var ErrEmptyCommand = errors.New("fsm: empty command")

// FSM is the raft.FSM over a key database. Create it with New.
type FSM struct {
	db *keydb.DB

	mu      sync.Mutex
	applied uint64
	// advanced is closed, and cleared, when applied changes; nil while no
	// one waits.
	advanced chan struct{}
}

var _ raft.FSM = (*FSM)(nil)

// New returns an FSM that applies commands to db. Its applied index starts
// at db's.
func New(db *keydb.DB) *FSM {
	return &FSM{db: db, applied: db.AppliedIndex()}
}

// DB returns the key database the FSM applies to.
func (f *FSM) DB() *keydb.DB { return f.db }

// Encode encodes a command for raft.Apply. It refuses an empty command.
func Encode(cmd *hsmfsmv1.Command) ([]byte, error) {
	if cmd.GetCommand() == nil {
		return nil, ErrEmptyCommand
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(cmd)
	if err != nil {
		return nil, fmt.Errorf("fsm: encode command: %w", err)
	}
	return b, nil
}

// Decode decodes a command encoded by Encode. It fails for bytes that are not
// a Command and for a command with no command set (which includes a command
// type this binary does not know).
func Decode(b []byte) (*hsmfsmv1.Command, error) {
	cmd := new(hsmfsmv1.Command)
	if err := proto.Unmarshal(b, cmd); err != nil {
		return nil, fmt.Errorf("fsm: decode command: %w", err)
	}
	if cmd.GetCommand() == nil {
		return nil, ErrEmptyCommand
	}
	return cmd, nil
}

// Apply applies a committed log entry and returns its *hsmfsmv1.Result
// (nil for an entry that is not a command). It panics if a command entry
// does not decode: see the package documentation.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		f.advance(l.Index)
		return nil
	}
	cmd, err := Decode(l.Data)
	if err != nil {
		panic(fmt.Errorf("fsm: cannot apply log entry %d (term %d): %w", l.Index, l.Term, err))
	}
	res := f.db.Apply(l.Index, cmd)
	f.advance(l.Index)
	return res
}

// Snapshot captures the database's current state. raft does not call Apply
// concurrently with Snapshot; the encoding is in memory and fast.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	b, err := f.db.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("fsm: snapshot: %w", err)
	}
	return &snapshot{data: b}, nil
}

// Restore replaces the database's state with the snapshot read from rc, and
// sets the applied index to the snapshot's.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Errorf("fsm: read snapshot: %w", err)
	}
	if err := f.db.Restore(b); err != nil {
		return fmt.Errorf("fsm: restore: %w", err)
	}
	f.set(f.db.AppliedIndex())
	return nil
}

// AppliedIndex returns the index of the last log entry applied or restored.
func (f *FSM) AppliedIndex() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applied
}

// WaitApplied returns nil once the FSM has applied index (at once if it
// already has), or ctx's error, wrapped, when ctx ends first. It starts no
// goroutine.
func (f *FSM) WaitApplied(ctx context.Context, index uint64) error {
	for {
		f.mu.Lock()
		applied := f.applied
		if applied >= index {
			f.mu.Unlock()
			return nil
		}
		if f.advanced == nil {
			f.advanced = make(chan struct{})
		}
		ch := f.advanced
		f.mu.Unlock()

		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("fsm: waiting for index %d, applied %d: %w", index, applied, ctx.Err())
		}
	}
}

// advance raises the applied index to index.
func (f *FSM) advance(index uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if index > f.applied {
		f.setLocked(index)
	}
}

// set sets the applied index, which a restore may lower.
func (f *FSM) set(index uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.setLocked(index)
}

func (f *FSM) setLocked(index uint64) {
	f.applied = index
	if f.advanced != nil {
		close(f.advanced)
		f.advanced = nil
	}
}

// snapshot is an immutable encoded database.
type snapshot struct {
	data []byte
}

// Persist writes the snapshot to sink and closes it, or cancels it on error.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s.data); err != nil {
		if cerr := sink.Cancel(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return fmt.Errorf("fsm: persist snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("fsm: close snapshot sink: %w", err)
	}
	return nil
}

// Release does nothing: the snapshot holds only bytes.
func (s *snapshot) Release() {}
