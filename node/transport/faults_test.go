package transport_test

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/node/transport"
)

func TestFaultsTable(t *testing.T) {
	var f transport.Faults // the zero value is ready
	require.Empty(t, f.Snapshot())

	f.Block("10.0.0.2:7000", "10.0.0.1:7000")
	f.Delay("10.0.0.3:7000", 50*time.Millisecond)
	f.Loss("10.0.0.1:7000", 2) // clamped
	require.Equal(t, []transport.PeerFault{
		{Peer: "10.0.0.1:7000", Blocked: true, Loss: 1},
		{Peer: "10.0.0.2:7000", Blocked: true},
		{Peer: "10.0.0.3:7000", Delay: 50 * time.Millisecond},
	}, f.Snapshot())
	require.True(t, f.Blocked("10.0.0.2:7000"))

	f.Unblock("10.0.0.2:7000", "10.0.0.1:7000")
	f.Delay("10.0.0.3:7000", 0)
	require.Equal(t, []transport.PeerFault{{Peer: "10.0.0.1:7000", Loss: 1}}, f.Snapshot())
	require.False(t, f.Blocked("10.0.0.2:7000"))

	f.Block("10.0.0.9:7000")
	f.Heal()
	require.Empty(t, f.Snapshot())
	require.False(t, f.Blocked("10.0.0.9:7000"))
}

func TestBlock(t *testing.T) {
	tests := []struct {
		name    string
		blocker func(a, b *node) (blocker, other *node)
	}{
		{name: "dialer blocks", blocker: func(a, b *node) (*node, *node) { return a, b }},
		{name: "acceptor blocks", blocker: func(a, b *node) (*node, *node) { return b, a }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t)
			a := newNode(t, c.cert, c.ca.Cert, clusterID)
			b := newNode(t, c.cert, c.ca.Cert, clusterID)
			out, in := requireAccepts(t, a, b)
			echo(in)
			roundTrip(t, out, "before")

			blocker, other := tt.blocker(a, b)
			blocker.Faults().Block(other.addr())

			// Live connections are closed, on both ends.
			mine, theirs := out, in
			if blocker == b {
				mine, theirs = in, out
			}
			require.ErrorIs(t, readErr(t, mine), transport.ErrBlocked)
			require.Error(t, readErr(t, theirs))

			// Neither side can dial the other: locally refused, or refused by the peer.
			_, err := blocker.Dial(raftAddr(other), waitFor)
			require.ErrorIs(t, err, transport.ErrBlocked)
			require.Contains(t, err.Error(), other.addr())
			_, err = other.Dial(raftAddr(blocker), waitFor)
			require.ErrorIs(t, err, transport.ErrBlocked)

			// A third node is unaffected, and blocker delivered nothing from other.
			requireAccepts(t, newNode(t, c.cert, c.ca.Cert, clusterID), blocker)

			blocker.Faults().Heal()
			out, in = requireAccepts(t, other, blocker)
			echo(in)
			roundTrip(t, out, "after heal")
			out, in = requireAccepts(t, blocker, other)
			echo(in)
			roundTrip(t, out, "after heal, other way")
		})
	}
}

func TestDelay(t *testing.T) {
	const d = 100 * time.Millisecond
	c := newCluster(t)
	a := newNode(t, c.cert, c.ca.Cert, clusterID)
	b := newNode(t, c.cert, c.ca.Cert, clusterID)
	out, in := requireAccepts(t, a, b)
	echo(in)
	roundTrip(t, out, "warm up")

	// The delay applies to a live connection, keeps the order of writes, and adds at least
	// d to a round trip (only a's writes are delayed).
	a.Faults().Delay(b.addr(), d)
	start := time.Now()
	require.NoError(t, out.SetDeadline(time.Now().Add(waitFor)))
	parts := []string{"one ", "two ", "three ", strings.Repeat("x", 64<<10)}
	for _, p := range parts {
		_, err := out.Write([]byte(p))
		require.NoError(t, err)
	}
	want := strings.Join(parts, "")
	got := make([]byte, len(want))
	_, err := io.ReadFull(out, got)
	require.NoError(t, err)
	require.GreaterOrEqual(t, time.Since(start), d)
	require.Equal(t, want, string(got))

	// Removing the delay lets writes through directly again.
	a.Faults().Delay(b.addr(), 0)
	roundTrip(t, out, "undelayed")

	// Closing with bytes in flight discards them and does not hang.
	a.Faults().Delay(b.addr(), time.Hour)
	_, err = out.Write([]byte("never delivered"))
	require.NoError(t, err)
	require.NoError(t, out.Close())
	require.Error(t, readErr(t, in))
}

func TestLoss(t *testing.T) {
	c := newCluster(t)
	a := newNode(t, c.cert, c.ca.Cert, clusterID)
	b := newNode(t, c.cert, c.ca.Cert, clusterID)
	out, in := requireAccepts(t, a, b)
	echo(in)

	a.Faults().Loss(b.addr(), 1)
	_, err := out.Write([]byte("lost"))
	require.ErrorIs(t, err, transport.ErrLost)
	require.ErrorIs(t, readErr(t, out), transport.ErrLost)
	require.Error(t, readErr(t, in))

	a.Faults().Loss(b.addr(), 0)
	out, in = requireAccepts(t, a, b)
	echo(in)
	roundTrip(t, out, "delivered")
}
