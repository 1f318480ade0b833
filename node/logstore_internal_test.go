package node

import (
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"

	"github.com/hsmsim/hsmsim/internal/cputime"
)

// TestLogStoreReopens checks the Raft log store with logStoreOptions:
// logs appended and truncated as a live log is are all there after the
// file is closed and opened again, the free-page list rebuilt from the
// pages, and the store takes more.
func TestLogStoreReopens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	open := func() *raftboltdb.BoltStore {
		s, err := raftboltdb.New(raftboltdb.Options{Path: path, BoltOptions: logStoreOptions()})
		require.NoError(t, err)
		return s
	}
	s := open()
	for i := uint64(1); i <= 300; i++ {
		require.NoError(t, s.StoreLog(&raft.Log{Index: i, Term: 1, Data: []byte{byte(i)}}))
		if i%100 == 0 {
			require.NoError(t, s.DeleteRange(i-99, i-50)) // compaction frees pages
		}
	}
	require.NoError(t, s.Close())

	s = open()
	defer s.Close()
	first, err := s.FirstIndex()
	require.NoError(t, err)
	last, err := s.LastIndex()
	require.NoError(t, err)
	require.Equal(t, uint64(51), first)
	require.Equal(t, uint64(300), last)
	var l raft.Log
	require.NoError(t, s.GetLog(299, &l))
	require.Equal(t, []byte{byte(299 % 256)}, l.Data)
	require.ErrorIs(t, s.GetLog(120, &l), raft.ErrLogNotFound, "truncated")
	require.NoError(t, s.StoreLog(&raft.Log{Index: 301, Term: 2, Data: []byte("more")}))
	require.NoError(t, s.GetLog(301, &l))
	require.Equal(t, []byte("more"), l.Data)
}

// BenchmarkLogStore measures one Raft log append (a 300-byte entry, as a
// key creation's, and its fsyncs) on a compacted log of 5,000 entries
// that is truncated as it grows, with bbolt's default options and with
// logStoreOptions. cpu-ns/op is the process's CPU time per append.
func BenchmarkLogStore(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts *bbolt.Options
	}{{"default", nil}, {"no-freelist-sync", logStoreOptions()}} {
		b.Run(bc.name, func(b *testing.B) {
			s, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(b.TempDir(), "raft.db"), BoltOptions: bc.opts})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			data := make([]byte, 300)
			// 20,000 entries appended ten at a time, of which the oldest
			// 15,000 are then truncated: the free pages of a log that has
			// been compacted after a snapshot.
			const appended, window = 20000, 5000
			for i := uint64(1); i <= appended; i += 10 {
				logs := make([]*raft.Log, 10)
				for j := range logs {
					logs[j] = &raft.Log{Index: i + uint64(j), Term: 1, Data: data}
				}
				if err := s.StoreLogs(logs); err != nil {
					b.Fatal(err)
				}
			}
			if err := s.DeleteRange(1, appended-window); err != nil {
				b.Fatal(err)
			}
			next := uint64(appended + 1)
			b.ResetTimer()
			cpu0 := cputime.Self()
			for range b.N {
				if err := s.StoreLogs([]*raft.Log{{Index: next, Term: 1, Data: data}}); err != nil {
					b.Fatal(err)
				}
				if next%1000 == 0 {
					if err := s.DeleteRange(next-window, next-window+999); err != nil {
						b.Fatal(err)
					}
				}
				next++
			}
			b.StopTimer()
			b.ReportMetric(float64(cputime.Self()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}
